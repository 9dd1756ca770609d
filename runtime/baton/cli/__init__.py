"""The ``baton`` command line. :func:`main` is the console script and ``python -m baton``.

``baton step ...`` is every pod's command, so it goes straight to the step runtime
(:mod:`baton.step.entry`) without importing Typer, Rich or the app; this module
therefore imports nothing at import time.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``baton`` on ``sys.argv``: ``step`` without the app, anything else with it."""
    if sys.argv[1:2] == ["step"]:
        import gc

        gc.disable()  # until the step's imports are done (see baton.step.entry.main)
        from baton.step.entry import main as step_main

        sys.exit(step_main(sys.argv[2:]))
    from baton.cli.app import main as app_main

    app_main()
