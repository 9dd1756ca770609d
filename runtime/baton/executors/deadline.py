"""``baton run --deadline``: the local executor's side of an execution's deadline.

Past the deadline (from the attempt's start, after any queueing) the execution is
asked to stop as ``baton stop`` asks — STOPPING, with the exit code DeadlineExceeded
that makes the flow end it FAILED (:mod:`baton.flow.deadlines`) — and its unit
processes get SIGTERM, so chunk steps end at their next chunk boundary and tasklets
see ``ctx.stop_requested``. Units still running a grace period later are killed;
their chunk in flight rolls back with them, and they are recorded FAILED.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Iterable

from baton.core.entities import JobExecution
from baton.core.status import DEADLINE_EXCEEDED, BatchStatus
from baton.executors.units import Running
from baton.flow.deadlines import deadline_reason, overdue
from baton.repository import JobRepository

log = logging.getLogger("baton.executor")


class DeadlineWatch:
    """Checked on every round of the executor's loop."""

    def __init__(self, repo: JobRepository, seconds: float | None, grace: float):
        self.repo = repo
        self.seconds = seconds
        self.grace = grace
        self._requested: float | None = None  # monotonic time of the stop request
        self._killed = False

    def wake_in(self, execution: JobExecution) -> float | None:
        """Seconds until :meth:`check` has something to do (None: nothing to wait for)."""
        if self._requested is None:
            if not self.seconds or execution.start_time is None:
                return None
            if execution.status is not BatchStatus.STARTED:
                return None
            ran = (dt.datetime.now(dt.UTC) - execution.start_time).total_seconds()
            return max(0.0, self.seconds - ran) + 0.01
        if self._killed:
            return None
        return max(0.0, self.grace - (time.monotonic() - self._requested)) + 0.01

    def check(
        self, execution: JobExecution, running: Iterable[Running], stop_threads: threading.Event
    ) -> JobExecution:
        """The execution, STOPPING for its deadline once that is reached; its units
        signalled then, and killed once the grace period is over."""
        if self._requested is None:
            if not overdue(execution, self.seconds, dt.datetime.now(dt.UTC)):
                return execution
            assert self.seconds is not None
            log.warning(
                "deadline of %gs reached: stopping at the next chunk boundary", self.seconds
            )
            execution = self.repo.transition(
                execution.id,
                BatchStatus.STOPPING,
                action="stop",
                exit_code=DEADLINE_EXCEEDED,
                description=deadline_reason(self.seconds),
                decide=lambda cur: (
                    BatchStatus.STOPPING if cur.status is BatchStatus.STARTED else None
                ),
            )
            self._requested = time.monotonic()
            stop_threads.set()
            _signal(running, signal.SIGTERM)
        elif not self._killed and time.monotonic() - self._requested > self.grace:
            self._killed = True
            alive = [r for r in running if r.alive_process() is not None]
            if alive:
                log.error("units still running %gs after the deadline: killing them", self.grace)
            _signal(alive, signal.SIGKILL)
        return execution


def _signal(running: Iterable[Running], signum: signal.Signals) -> None:
    for r in running:
        proc = r.alive_process()
        if proc is not None:
            proc.send_signal(signum)
