"""``python -m baton``: the ``baton`` console script."""

from baton.cli import main

main()
