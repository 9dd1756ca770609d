"""Deadlines as both executors decide them (pure): when an execution is past its own
deadline, how that stop is recorded, and how an execution whose deadline — or whose
step's ``timeoutSeconds`` — was reached ends: FAILED, exit code DeadlineExceeded,
restartable from its checkpoints like any failure.

The execution's deadline counts from its attempt's start (after any queueing), so a
restart gets a fresh one. Reaching it asks for the same stop as ``baton stop`` /
``spec.stop`` (STOPPING: units end at their next chunk boundary), with the exit code
DeadlineExceeded recorded on the STOPPING execution: that is what turns the stop's
STOPPED outcome into FAILED when the flow ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from baton.core.entities import JobExecution, StepExecution
from baton.core.status import DEADLINE_EXCEEDED, BatchStatus, UnitKind
from baton.flow.actions import Finish


def overdue(execution: JobExecution, deadline_seconds: float | None, now: dt.datetime) -> bool:
    """Running (STARTED) past ``deadline_seconds`` from its start: stop it now."""
    if not deadline_seconds or execution.status is not BatchStatus.STARTED:
        return False
    if execution.start_time is None:
        return False
    return (now - execution.start_time).total_seconds() >= deadline_seconds


def deadline_reason(deadline_seconds: float) -> str:
    """The description recorded with the deadline's stop request (its first line is
    what the execution's end says first)."""
    return f"{DEADLINE_EXCEEDED}: the execution ran past its deadline of {deadline_seconds:g}s"


def stopped_for_deadline(execution: JobExecution) -> bool:
    return execution.exit_code == DEADLINE_EXCEEDED and execution.status.running


def finish_of(action: Finish, execution: JobExecution, steps: Iterable[StepExecution]) -> Finish:
    """The flow's end with deadlines applied: an execution stopped for its deadline
    ends FAILED (its units stopped, or were killed after the grace period), not
    STOPPED; one that failed because a step ran past ``timeoutSeconds`` keeps FAILED
    with the exit code DeadlineExceeded. Any other end is left as it is."""
    if action.status in (BatchStatus.STOPPED, BatchStatus.FAILED) and stopped_for_deadline(
        execution
    ):
        reason = execution.exit_description.split("\n", 1)[0] or DEADLINE_EXCEEDED
        return Finish(BatchStatus.FAILED, f"{reason}; {action.description}", DEADLINE_EXCEEDED)
    timed_out = any(
        s.kind == UnitKind.STEP
        and s.status is BatchStatus.FAILED
        and s.exit_code == DEADLINE_EXCEEDED
        for s in steps
    )
    if action.status is BatchStatus.FAILED and timed_out:
        return Finish(action.status, action.description, DEADLINE_EXCEEDED)
    return action
