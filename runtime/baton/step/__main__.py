"""``python -m baton.step ID STEP ...``: ``baton step`` without the CLI (see entry)."""

import sys

from baton.step.entry import main

sys.exit(main(prog="python -m baton.step"))
