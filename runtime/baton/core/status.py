"""Statuses and exit codes, and the one table of the status transitions allowed.

Every writer of a status (the repository) checks it against ``TRANSITIONS``; every
reader that asks "may I stop / abandon / compensate this?" asks the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum
from types import MappingProxyType


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


DEADLINE_EXCEEDED = "DeadlineExceeded"
"""Exit code (and description prefix) of a step that ran past its ``timeoutSeconds`` and
of an execution that ended FAILED for it or for its own deadline (``deadlineSeconds``,
``baton run --deadline``); the operator's BatchExecution condition type too."""

# What the flow can end an execution with (``JobRepository.finish``, from any running status).
OUTCOMES = frozenset(
    {
        BatchStatus.COMPLETED,
        BatchStatus.FAILED,
        BatchStatus.STOPPED,
        BatchStatus.ABANDONED,
        BatchStatus.COMPENSATED,
        BatchStatus.COMPENSATION_FAILED,
    }
)

# The one table: from each status, the statuses a job execution may move to. Stop
# (STOPPING) and the saga (COMPENSATING) may be asked for again while in progress; a
# stopped, failed or unknown execution may only be abandoned or compensated; the four
# ends never move. The repository checks it inside every status UPDATE.
TRANSITIONS: Mapping[BatchStatus, frozenset[BatchStatus]] = MappingProxyType(
    {
        BatchStatus.STARTING: frozenset({BatchStatus.STARTED, BatchStatus.STOPPING}) | OUTCOMES,
        BatchStatus.STARTED: frozenset({BatchStatus.STOPPING, BatchStatus.COMPENSATING}) | OUTCOMES,
        BatchStatus.STOPPING: frozenset({BatchStatus.STOPPING, BatchStatus.COMPENSATING})
        | OUTCOMES,
        BatchStatus.COMPENSATING: frozenset({BatchStatus.COMPENSATING}) | OUTCOMES,
        BatchStatus.STOPPED: frozenset({BatchStatus.COMPENSATING, BatchStatus.ABANDONED}),
        BatchStatus.FAILED: frozenset({BatchStatus.COMPENSATING, BatchStatus.ABANDONED}),
        BatchStatus.UNKNOWN: frozenset({BatchStatus.COMPENSATING, BatchStatus.ABANDONED}),
        BatchStatus.COMPLETED: frozenset(),
        BatchStatus.ABANDONED: frozenset(),
        BatchStatus.COMPENSATED: frozenset(),
        BatchStatus.COMPENSATION_FAILED: frozenset(),
    }
)


def sources(to: BatchStatus) -> frozenset[BatchStatus]:
    """The statuses from which an execution may move to ``to``."""
    return frozenset(s for s, targets in TRANSITIONS.items() if to in targets)


def can_stop(status: BatchStatus) -> bool:
    """A stop request would change something: not yet STOPPING, and STOPPING reachable."""
    return status is not BatchStatus.STOPPING and BatchStatus.STOPPING in TRANSITIONS[status]


def can_abandon(status: BatchStatus) -> bool:
    """Spring Batch: anything not running and not COMPLETED/ABANDONED may be abandoned."""
    return not status.running and BatchStatus.ABANDONED in TRANSITIONS[status]


class UnitKind(StrEnum):
    """What a step-execution row runs: a flow step, a saga's compensation, or a callback."""

    STEP = "step"
    COMPENSATION = "compensation"
    CALLBACK = "callback"
