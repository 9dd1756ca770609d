"""What the reconciler asks for: each action one effect, applied by
:mod:`baton_operator.applier` (status writes by the loop)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton.core.parameters import JobParameters
from baton.core.status import BatchStatus, UnitKind
from baton.spec.model import BatchJob


@dataclass(frozen=True)
class Launch:
    """Create a JobExecution (restart table applied by the repository)."""

    job: BatchJob  # ``job_spec`` parsed (the BatchJob, or the snapshot on a restart)
    job_spec: dict[str, Any]
    raw_params: Any  # first launch: spec.parameters (map or list), bound against the job spec
    params: JobParameters | None  # restart: the snapshotted, typed parameters
    observed_restart: int
    auto_restarts: int
    reason: str  # Launched | Restarted | AutoRestarted
    job_generation: int | None = None
    context: Mapping[str, Any] | None = None  # spec.context: seeds a new instance's context


@dataclass(frozen=True)
class StartExecution:
    """STARTING → STARTED; with ``concurrency`` on the job, only when admitted
    (maxRunning, cooldownSeconds), else the execution waits in phase Queued."""

    execution_id: int
    max_running: int | None = None
    cooldown_seconds: float = 0.0


@dataclass(frozen=True)
class CreateJob:
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class RequestStop:
    execution_id: int
    exit_code: str | None = None  # DeadlineExceeded: the stop of a deadline
    description: str | None = None


@dataclass(frozen=True)
class DeletePods:
    """Grace period over: delete the pods of a Job (SIGTERM → stop at a chunk)."""

    job_name: str


@dataclass(frozen=True)
class FailUnits:
    """Units (a step, some partitions of it, a compensation or a callback) that the
    repository thinks are running, or that never started, whose Job is gone or
    finished: record them ended so the flow moves on (stale execution recovery)."""

    execution_id: int
    step: str
    kind: UnitKind
    partitions: tuple[int | None, ...]
    status: BatchStatus
    description: str


@dataclass(frozen=True)
class PlanStepPartitions:
    """Record the partitions of a partitioned step (count, items, a step's result)."""

    execution_id: int
    step: str


@dataclass(frozen=True)
class MarkCompensating:
    execution_id: int


@dataclass(frozen=True)
class FinishExecution:
    execution_id: int
    status: BatchStatus
    description: str
    exit_code: str | None = None  # default: the status's name


@dataclass(frozen=True)
class AbandonExecution:
    execution_id: int
    compensate: bool = False
    """compensateOnAbandon with compensations due: COMPENSATING first, then the saga."""


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PatchStatus:
    """The whole ``.status`` wanted (a dump of ``ExecutionStatus``): the writer sends
    the merge patch from the status it found to this one."""

    status: dict[str, Any]


@dataclass(frozen=True)
class MergeStatus:
    """Fields of ``.status`` to set as they are (a dump of a partial ``ExecutionStatus``),
    whatever the rest holds: what a launch attempt's outcome says."""

    patch: dict[str, Any]


Action = (
    Launch
    | StartExecution
    | CreateJob
    | RequestStop
    | DeletePods
    | FailUnits
    | PlanStepPartitions
    | MarkCompensating
    | FinishExecution
    | AbandonExecution
    | Event
    | PatchStatus
    | MergeStatus
)

# Actions that change the repository or the cluster: after them, read and decide again.
CHANGES_STATE = (
    Launch,
    StartExecution,
    RequestStop,
    FailUnits,
    PlanStepPartitions,
    MarkCompensating,
    FinishExecution,
    AbandonExecution,
)
