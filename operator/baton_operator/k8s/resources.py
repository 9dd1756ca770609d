"""The custom resources: ``BatchExecution`` (one launch of a BatchJob) with its typed
status, and ``Phase``. The CRDs are generated from these models
(:mod:`baton_operator.k8s.crdgen`), so the API server, the operator and the CLI share
one schema; ``.status`` is only ever written as a dump of :class:`ExecutionStatus`.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from baton.core.status import BatchStatus
from baton.spec.model import NAME_PATTERN, Model, ObjectMeta
from baton.spec.template import PodTemplate
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "baton.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "batchexecutions"  # the API path of BatchExecutions
JOBS_PLURAL = "batchjobs"


class Phase(StrEnum):
    """The phase of a BatchExecution, as shown by ``kubectl get bx``."""

    PENDING = "Pending"
    QUEUED = "Queued"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    COMPLETED = "Completed"
    ABANDONED = "Abandoned"
    REJECTED = "Rejected"
    UNKNOWN = "Unknown"
    COMPENSATING = "Compensating"
    COMPENSATED = "Compensated"
    COMPENSATION_FAILED = "CompensationFailed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @classmethod
    def of(cls, status: BatchStatus) -> Phase:
        return _PHASE_OF[status]


TERMINAL_PHASES = frozenset(
    {
        Phase.STOPPED,
        Phase.FAILED,
        Phase.COMPLETED,
        Phase.ABANDONED,
        Phase.REJECTED,
        Phase.COMPENSATED,
        Phase.COMPENSATION_FAILED,
    }
)

_PHASE_OF = {
    BatchStatus.STARTING: Phase.STARTING,
    BatchStatus.STARTED: Phase.RUNNING,
    BatchStatus.STOPPING: Phase.STOPPING,
    BatchStatus.STOPPED: Phase.STOPPED,
    BatchStatus.FAILED: Phase.FAILED,
    BatchStatus.COMPLETED: Phase.COMPLETED,
    BatchStatus.ABANDONED: Phase.ABANDONED,
    BatchStatus.UNKNOWN: Phase.UNKNOWN,
    BatchStatus.COMPENSATING: Phase.COMPENSATING,
    BatchStatus.COMPENSATED: Phase.COMPENSATED,
    BatchStatus.COMPENSATION_FAILED: Phase.COMPENSATION_FAILED,
}


class Mutable(BaseModel):
    """Status models: camelCase on the wire, mutable while the operator builds them."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def iso(value: dt.datetime | None) -> str | None:
    """A time as status fields show it (RFC 3339, UTC, seconds)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- BatchExecution spec


class AutoRestart(Model):
    """When the operator restarts an execution by itself."""

    on_disruption: bool = Field(
        default=False,
        description="Restart an execution stopped by a pod disruption (eviction, drain, "
        "preemption: pod condition DisruptionTarget) from its checkpoints, without "
        "spending the retry budget.",
    )
    max_restarts: int = Field(
        default=3, ge=0, le=100, description="Automatic restarts allowed per execution."
    )


class KeyRef(Model):
    """A key of a ConfigMap or Secret in the execution's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253, description="Object name.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Data key.")


class ValueFrom(Model):
    """Where a parameter's value comes from: exactly one of the two."""

    config_map_key_ref: KeyRef | None = Field(default=None, description="A ConfigMap key.")
    secret_key_ref: KeyRef | None = Field(
        default=None, description="A Secret key: the value is never identifying nor shown."
    )


class ParameterEntry(Model):
    """One entry of the list form of ``spec.parameters`` (Argo's
    ``arguments.parameters[]``): a literal ``value`` or a ``valueFrom`` read at launch."""

    name: str = Field(min_length=1, max_length=255, description="Parameter name.")
    value: Any = Field(default=None, description="Its value: a string, a number or a boolean.")
    value_from: ValueFrom | None = Field(
        default=None, description="The ConfigMap or Secret key holding the value."
    )


class ExecutionSpec(Model):
    """One launch of a BatchJob with parameters, and the controls of that launch."""

    job: str = Field(
        pattern=NAME_PATTERN,
        max_length=253,
        description="Name of the BatchJob (same namespace) to run. Its spec is snapshotted "
        "at launch, so later edits of the BatchJob do not change this execution. Immutable.",
    )
    parameters: Any = Field(
        default_factory=dict,
        description="Job parameters, checked and typed against the BatchJob's declared "
        "parameters; the identifying ones select the job instance. Either a map NAME: VALUE "
        "(a VALUE may be {valueFrom: ...}) or a list of {name, value} / {name, valueFrom} "
        "(valueFrom: configMapKeyRef or secretKeyRef {name, key} in this namespace, read "
        "once at launch; Secret values are never identifying, never shown, stored redacted "
        "and reach the step pods by secretKeyRef). Immutable.",
    )
    template: PodTemplate | None = Field(
        default=None,
        description="Pod template overlay of this launch (e.g. more memory for a big day), "
        "merged last over the chart's stepDefaults, the BatchJob's and the step's. Immutable.",
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Initial job context (any JSON values): every step reads it as "
        "ctx.context and may add to it. Seeded at the first launch of the instance; on a "
        "restart what the steps already put there wins.",
    )
    stop: bool = Field(
        default=False,
        description="Set to true to stop a running execution: the repository is marked "
        "STOPPING, pods stop at their next chunk boundary, the phase becomes Stopped.",
    )
    abandon: bool = Field(
        default=False,
        description="Set to true to abandon a Stopped or Failed execution: phase Abandoned, "
        "and its job instance can never be restarted. Cannot be undone.",
    )
    restart: int = Field(
        default=0,
        ge=0,
        description="Bump (0 → 1 → 2 ...) to restart a Failed or Stopped execution: a new "
        "attempt that resumes from the last committed checkpoints. Can only increase.",
    )
    auto_restart: AutoRestart | None = Field(
        default=None, description="Automatic restarts (on pod disruption)."
    )
    backoff_limit_per_index: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Retries of a step's pod (each partition index separately) after a "
        "retryable failure (exit code 1); the retried pod resumes from the last committed "
        "chunk. Stopped (3) and fatal (8) exits are never retried.",
    )
    stop_grace_period_seconds: int = Field(
        default=60,
        ge=0,
        description="After a stop request, how long pods may take to reach a chunk "
        "boundary before the operator deletes them (SIGTERM: the same graceful stop).",
    )
    deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Deadline of each attempt, from its start (queueing not counted): "
        "then the execution is stopped as spec.stop does (pods deleted after "
        "stopGracePeriodSeconds) and ends Failed with condition DeadlineExceeded; a "
        "restart resumes from the checkpoints with a fresh deadline.",
    )
    working_dir: str | None = Field(
        default=None,
        description="Directory inside the image that holds the job's code (importable by "
        "the steps); default: the image's working directory.",
    )
    service_account_name: str | None = Field(
        default=None, description="ServiceAccount of the step pods."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Seconds after the execution ended (any terminal phase) before the "
        "operator deletes this BatchExecution with its Jobs and pods; the repository keeps "
        "its record (baton show, history). Wins over the BatchJob's spec.ttlStrategy.",
    )


# ---------------------------------------------------------------- BatchExecution status


class Condition(Mutable):
    """A Kubernetes-style condition."""

    type: str = Field(description="Launched, Ready, StopRequested, Rejected, WrongState...")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason; for rejections, the rule.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = Field(default=None, description="RFC 3339 time.")


class StepStatus(Mutable):
    """A step of the current attempt, with its partitions summed up."""

    name: str = Field(description="Step name.")
    status: str = Field(description="BatchStatus of the step (COMPLETED, STARTED, ...).")
    partitions_total: int | None = Field(default=None, description="Partitions of the step.")
    partitions_done: int | None = Field(default=None, description="Partitions COMPLETED.")
    read_count: int = Field(default=0, description="Items read.")
    write_count: int = Field(default=0, description="Items written.")
    filter_count: int = Field(default=0, description="Items filtered by the processor.")
    skip_count: int = Field(default=0, description="Items skipped.")
    commit_count: int = Field(default=0, description="Chunks committed.")
    rollback_count: int = Field(default=0, description="Chunks rolled back.")
    total_count: int | None = Field(default=None, description="Items to read, when known.")
    start_time: str | None = Field(default=None, description="When the step started.")
    end_time: str | None = Field(default=None, description="When the step ended.")
    exit_description: str | None = Field(default=None, description="Why it ended so.")


class ExecutionStatus(Mutable):
    """What the operator observed: a mirror of the job repository."""

    phase: Phase | None = Field(default=None, description="Phase of the current attempt.")
    execution_id: int | None = Field(
        default=None,
        alias="jobExecutionId",
        description="Id of the current JobExecution in the repository.",
    )
    instance_id: int | None = Field(default=None, description="Id of the JobInstance.")
    repository_id: str | None = Field(
        default=None,
        description="Id of the job repository that launched this execution: only an "
        "operator of that repository touches it (others leave it alone, with a "
        "ForeignExecution event).",
    )
    attempt: int | None = Field(default=None, description="Attempt number of the instance.")
    observed_restart: int | None = Field(
        default=None, description="The spec.restart value the current attempt answers."
    )
    auto_restarts: int | None = Field(default=None, description="Automatic restarts made.")
    job_generation: int | None = Field(
        default=None, description="Generation of the BatchJob snapshotted at launch."
    )
    progress: str | None = Field(default=None, description="Overall progress, e.g. 42%.")
    read_count: int | None = Field(default=None, description="Items read, all steps.")
    write_count: int | None = Field(default=None, description="Items written, all steps.")
    skip_count: int | None = Field(default=None, description="Items skipped, all steps.")
    steps: list[StepStatus] | None = Field(default=None, description="Steps of this attempt.")
    logs: dict[str, str] | None = Field(
        default=None, description="A link per step to its logs (chart logs.urlTemplate)."
    )
    start_time: str | None = Field(default=None, description="When the attempt started.")
    end_time: str | None = Field(default=None, description="When the attempt ended.")
    exit_description: str | None = Field(default=None, description="Why it ended so.")
    disrupted_pod: str | None = Field(
        default=None, description="The last pod of this execution that was disrupted."
    )
    disrupted_attempt: int | None = Field(
        default=None, description="The attempt in which that disruption happened."
    )
    stop_requested_at: str | None = Field(
        default=None, description="When the operator recorded the stop request."
    )
    conditions: list[Condition] | None = Field(default=None, description="Conditions.")


class JobStatus(Mutable):
    """Status of a BatchJob: its BatchExecutions in the namespace, written by the
    operator when one of them changes phase."""

    executions: int = Field(default=0, description="BatchExecutions of this job.")
    phases: dict[str, int] = Field(
        default_factory=dict, description="How many BatchExecutions are in each phase."
    )
    last_execution: str | None = Field(
        default=None, description="The most recently created BatchExecution."
    )
    last_phase: str | None = Field(default=None, description="Phase of the last execution.")


class BatchExecution(Model):
    """One launch of a BatchJob: ``kind: BatchExecution``."""

    api_version: Literal["baton.dev/v1alpha1"] = "baton.dev/v1alpha1"
    kind: Literal["BatchExecution"] = "BatchExecution"
    metadata: ObjectMeta
    spec: ExecutionSpec
    status: ExecutionStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name
