"""Steps that print, for the tests of the units' output files (``baton logs``)."""

from __future__ import annotations

import logging
import os
import signal
import sys

from baton import StepContext

log = logging.getLogger("logjobs")


def talk(ctx: StepContext) -> None:
    """Three lines on stdout, one on stderr, a warning; partition 1 fails when
    LOGJOBS_FAIL is set, and kills itself (SIGKILL) when LOGJOBS_KILL is."""
    for i in range(1, 4):
        print(f"line {i}")
    print("on stderr", file=sys.stderr)
    log.warning("talked")
    if ctx.partition_index == 1 and os.environ.get("LOGJOBS_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    if ctx.partition_index == 1 and os.environ.get("LOGJOBS_FAIL"):
        raise RuntimeError("partition 1 fails")


class Numbers:
    """1..5, read by a chunk step whose processor logs each item."""

    def __init__(self) -> None:
        self.n = 0

    def read(self) -> int | None:
        self.n += 1
        return self.n if self.n <= 5 else None


def logged(item: int) -> int:
    log.warning("item %d", item)
    return item


class Drop:
    def write(self, items: list[int]) -> None:
        pass
