"""Components of the deadline and retry-backoff tests. Slowness comes from the
environment, so a restart (which reuses the snapshotted parameters) can run fast."""

from __future__ import annotations

import os
import time
from typing import Any

from baton import StepContext
from testjobs import Transient


def _sleep_seconds() -> float:
    return float(os.environ.get("DEADLINE_TEST_SLEEP", "0"))


def stubborn(ctx: StepContext) -> str:
    """Ignores a stop: only the hard stop after the grace period ends it."""
    time.sleep(_sleep_seconds())
    return "done"


def polite(ctx: StepContext) -> str:
    """Returns as soon as it is asked to stop (maybe before its work is done)."""
    end = time.monotonic() + _sleep_seconds()
    while time.monotonic() < end and not ctx.stop_requested:
        time.sleep(0.02)
    return "done"


class Flaky:
    """Fails ``failures`` times (Transient) for every item divisible by ``every``, then
    passes it; each attempt is logged as ``n monotonic-time`` to the file ``log``."""

    def __init__(self, failures: int = 2, every: int = 5, log: str = ""):
        self.failures = failures
        self.every = every
        self.log = log
        self.seen: dict[int, int] = {}

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        n = item["n"]
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{n} {time.monotonic()}\n")
        if n % self.every == 0 and self.seen.get(n, 0) < self.failures:
            self.seen[n] = self.seen.get(n, 0) + 1
            raise Transient(f"transient {n}")
        return {"n": n, "tag": "flaky"}
