"""Components of the chatty job: steps that say what they do, for `baton logs`."""

from __future__ import annotations

import logging
import time

from baton import StepContext

log = logging.getLogger("chatty")


def say(ctx: StepContext) -> int:
    """Print ``ticks`` numbered lines, ``delayMs`` apart, then log a warning."""
    ticks, delay = int(ctx.params["ticks"]), int(ctx.params["delayMs"]) / 1000
    for i in range(1, ticks + 1):
        print(f"tick {i} of {ticks}", flush=True)
        time.sleep(delay)
    log.warning("partition %s said %d ticks", ctx.partition_index, ticks)
    return ticks


def notify(ctx: StepContext) -> None:
    print(f"execution {ctx.execution_id} ended: {(ctx.execution or {}).get('status')}")
