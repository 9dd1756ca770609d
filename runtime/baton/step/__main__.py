"""``python -m baton.step ID STEP ...``: ``baton step`` without the CLI (see entry)."""

import gc
import sys

gc.disable()  # until the step's imports are done (see baton.step.entry.main)

from baton.step.entry import main  # noqa: E402

sys.exit(main(prog="python -m baton.step"))
