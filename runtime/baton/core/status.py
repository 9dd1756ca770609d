"""Statuses and exit codes, and the one table of the status transitions allowed.

Every writer of a status (the repository) checks it against ``TRANSITIONS``; every
reader that asks "may I stop / abandon / compensate this?" asks the same table.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class BatchStatus(StrEnum):
    STARTING = "STARTING"
    STARTED = "STARTED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    ABANDONED = "ABANDONED"
    UNKNOWN = "UNKNOWN"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"

    @property
    def running(self) -> bool:
        return self in RUNNING

    @property
    def terminal(self) -> bool:
        return self not in RUNNING and self is not BatchStatus.UNKNOWN


RUNNING = frozenset(
    {BatchStatus.STARTING, BatchStatus.STARTED, BatchStatus.STOPPING, BatchStatus.COMPENSATING}
)


class ExitCode(IntEnum):
    """Process exit codes: the contract of `baton run`, `baton step` and (later) pods."""

    COMPLETED = 0
    FAILED = 1  # the job (or a step, retryably) failed
    USAGE = 2  # command-line usage error (click's own code)
    STOPPED = 3  # stopped on request; never retried
    REJECTED = 4  # a restart rule refused the launch
    INVALID = 5  # bad manifest, unknown job, bad parameter, import error
    DATABASE = 6  # the job repository is unreachable
    WRONG_STATE = 7  # stop/abandon/restart of an execution in the wrong state
    FATAL = 8  # a step failed in a way a retry cannot fix (pods: fail the index)
    CONTINUE = 9  # time budget used up; the next incarnation continues

    @classmethod
    def for_status(cls, status: BatchStatus) -> ExitCode:
        return {
            BatchStatus.COMPLETED: cls.COMPLETED,
            BatchStatus.STOPPED: cls.STOPPED,
        }.get(status, cls.FAILED)


def can_stop(status: BatchStatus) -> bool:
    return status in (BatchStatus.STARTING, BatchStatus.STARTED)


ABANDONABLE = (BatchStatus.STOPPED, BatchStatus.FAILED, BatchStatus.UNKNOWN)


def can_abandon(status: BatchStatus) -> bool:
    """Spring Batch: anything not running and not COMPLETED/ABANDONED may be abandoned."""
    return status in ABANDONABLE


class UnitKind(StrEnum):
    """What a step-execution row runs: a flow step, a saga's compensation, or a callback."""

    STEP = "step"
    COMPENSATION = "compensation"
    CALLBACK = "callback"
