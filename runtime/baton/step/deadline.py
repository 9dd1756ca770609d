"""A unit's ``timeoutSeconds``, enforced inside the step process, so that a local unit
and a pod behave the same and time spent waiting for a node, a queue or a parallelism
slot never counts: the clock starts when a process first opens the unit in this
attempt (its row's start), so a retried pod or the next incarnation does not get a
fresh budget, and a restart (a new attempt, a new row) does.

When it is reached the unit is asked to stop exactly as SIGTERM asks (the chunk loop
ends at the next chunk boundary, a tasklet sees ``ctx.stop_requested``) and ends
FAILED with the exit code DeadlineExceeded; its last committed chunk stays committed,
so a restart resumes after it. A unit still running a grace period later (a tasklet
that never looks, a chunk that hangs) is recorded so and its process exits at once:
a chunk in flight then never commits (its transaction dies with the process).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from baton.core.status import DEADLINE_EXCEEDED, BatchStatus
from baton.step.outcome import Outcome

log = logging.getLogger("baton.step")

DEFAULT_GRACE_SECONDS = 30.0
"""Between the graceful stop and the hard one, unless BATON_TERMINATION_GRACE_SECONDS
says otherwise (pods: max(30, stopGracePeriodSeconds), the pod's own grace)."""


def grace_seconds(env: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(env.get("BATON_TERMINATION_GRACE_SECONDS", "")))
    except ValueError:
        return DEFAULT_GRACE_SECONDS


def time_left(timeout: float, started: dt.datetime | None, now: dt.datetime) -> float:
    """Seconds left of ``timeout`` for a unit opened at ``started`` (None: just now)."""
    used = 0.0 if started is None else max(0.0, (now - started).total_seconds())
    return timeout - used


def timed_out_head(what: str, timeout: int) -> str:
    return f"{DEADLINE_EXCEEDED}: {what} ran past its timeoutSeconds ({timeout}s)"


def timed_out_description(
    what: str, timeout: int, *, chunks: int | None = None, killed_after: float | None = None
) -> str:
    """First line: what ``baton show`` and the execution's end say. ``chunks``: the
    chunks committed when a chunk loop stopped (None: a tasklet); ``killed_after``:
    the grace period the unit overran."""
    head = timed_out_head(what, timeout)
    if killed_after is not None:
        return f"{head}; killed {killed_after:g}s later (grace period) before a chunk boundary"
    if chunks is None:
        return f"{head}; a restart runs it again"
    return f"{head}; stopped at a chunk boundary after {chunks} committed chunk(s)"


def overrun(ended: Outcome, description: str) -> Outcome:
    """How a unit whose timeout fired ends: a chunk loop that still reached the end of
    its input COMPLETED; anything else (stopped at a boundary, or a tasklet, which may
    have returned early because it saw the stop) FAILED with DeadlineExceeded."""
    if ended.status is BatchStatus.COMPLETED and ended.counts is not None:
        return ended
    return Outcome(BatchStatus.FAILED, ended.counts, description, exit_code=DEADLINE_EXCEEDED)


@contextmanager
def enforced(
    left: float | None,
    expired: threading.Event,
    grace: float,
    kill: Callable[[], None] | None,
) -> Iterator[None]:
    """While the block runs: after ``left`` seconds set ``expired`` (the graceful stop),
    ``grace`` seconds later call ``kill`` (which records the unit and exits the
    process; None in a thread of a bigger process, which is never killed)."""
    if left is None:
        yield
        return
    timers: list[threading.Timer] = []
    lock = threading.Lock()
    ended = False

    def fire() -> None:
        log.warning("timeoutSeconds reached: stopping at the next chunk boundary")
        expired.set()
        with lock:
            if kill is not None and not ended:
                hard = threading.Timer(grace, kill)
                hard.daemon = True
                timers.append(hard)
                hard.start()

    if left <= 0:
        fire()  # opened already past it (a retried pod, the next incarnation)
    else:
        graceful = threading.Timer(left, fire)
        graceful.daemon = True
        timers.append(graceful)
        graceful.start()
    try:
        yield
    finally:
        with lock:
            ended = True
            for t in timers:
                t.cancel()


def run_bounded(record: Callable[[], object], seconds: float) -> None:
    """Run ``record`` in a thread, waiting at most ``seconds`` (the hard stop must not
    hang on a database or a lock held by the stuck work)."""
    worker = threading.Thread(target=record, name="deadline-record", daemon=True)
    worker.start()
    worker.join(seconds)


def hard_exit(code: int) -> None:
    """End the process now: a chunk in flight rolls back with its connection."""
    logging.shutdown()
    os._exit(code)
