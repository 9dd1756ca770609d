"""The custom resources: ``BatchExecution`` (one launch of a BatchJob) and the CRDs of
both kinds, generated from the pydantic models so the API server, the operator, the CLI
and the runtime share one schema.

``python -m baton.resources crds/`` rewrites the checked-in CRD YAML; a test fails when
it is stale.
"""

from __future__ import annotations

import copy
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from baton.core.status import BatchStatus
from baton.spec.model import NAME_PATTERN, JobSpec, Model, ObjectMeta
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "baton.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


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


class ExecutionSpec(Model):
    """One launch of a BatchJob with parameters, and the controls of that launch."""

    job: str = Field(
        pattern=NAME_PATTERN,
        max_length=253,
        description="Name of the BatchJob (same namespace) to run. Its spec is snapshotted "
        "at launch, so later edits of the BatchJob do not change this execution. Immutable.",
    )
    parameters: dict[str, int | str] = Field(
        default_factory=dict,
        description="Job parameters NAME: VALUE (a string or an integer; booleans, floats "
        "and dates as strings), checked and typed against the BatchJob's declared "
        "parameters. The identifying ones select the job instance. Immutable.",
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
    working_dir: str | None = Field(
        default=None,
        description="Directory inside the image that holds the job's code (importable by "
        "the steps); default: the image's working directory.",
    )
    service_account_name: str | None = Field(
        default=None, description="ServiceAccount of the step pods."
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
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


# ---------------------------------------------------------------- CRD generation


def structural(model: type[BaseModel], *, mode: Literal["validation", "serialization"]) -> Any:
    """The pydantic JSON schema of ``model`` as a Kubernetes structural schema:
    $refs inlined, nullables flattened, no titles or defaults (pydantic applies those),
    free-form mappings marked ``x-kubernetes-preserve-unknown-fields``."""
    raw = model.model_json_schema(by_alias=True, mode=mode)
    defs = raw.pop("$defs", {})

    def conv(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return conv(merged)
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            types = {o.get("type") for o in options}
            if len(options) == 1:
                return conv({**options[0], **rest})
            if types == {"integer", "string"}:
                return conv({**rest, "x-kubernetes-int-or-string": True})
            return conv({**rest, "x-kubernetes-preserve-unknown-fields": True})
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "default"):
                continue
            if key == "const":
                out["enum"] = [value]
            elif key == "properties":
                out["properties"] = {k: conv(v) for k, v in value.items()}
            elif key == "items":
                out["items"] = conv(value)
            elif key == "additionalProperties":
                if value is True:
                    out["x-kubernetes-preserve-unknown-fields"] = True
                elif isinstance(value, dict):
                    out["additionalProperties"] = conv(value)
            else:
                out[key] = value
        if not out.get("type") and not out.get("x-kubernetes-int-or-string"):
            if "enum" in out:
                out["type"] = "string"
            else:
                out["x-kubernetes-preserve-unknown-fields"] = True
        if (
            out.get("type") == "object"
            and "properties" not in out
            and "additionalProperties" not in out
        ):
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    return conv(raw)


def _rule(rule: str, message: str, reason: str | None = None) -> dict[str, Any]:
    out = {"rule": rule, "message": message}
    if reason:
        out["reason"] = reason
    return out


def _job_spec_schema() -> dict[str, Any]:
    spec: dict[str, Any] = structural(JobSpec, mode="validation")
    spec["description"] = "What to run: parameters, steps and how to restart them."
    steps = spec["properties"]["steps"]
    steps["x-kubernetes-list-type"] = "map"
    steps["x-kubernetes-list-map-keys"] = ["name"]
    steps["items"].setdefault("x-kubernetes-validations", []).append(
        _rule(
            "has(self.parallel) ? !has(self.tasklet) && !has(self.chunk)"
            " : has(self.tasklet) != has(self.chunk)",
            "a step needs exactly one of 'tasklet' or 'chunk' (a parallel group neither)",
        )
    )
    params = spec["properties"]["parameters"]
    params["x-kubernetes-list-type"] = "map"
    params["x-kubernetes-list-map-keys"] = ["name"]
    return spec


def _execution_spec_schema() -> dict[str, Any]:
    spec: dict[str, Any] = structural(ExecutionSpec, mode="validation")
    props = spec["properties"]
    props["job"]["x-kubernetes-validations"] = [
        _rule("self == oldSelf", "spec.job is immutable; create a new BatchExecution")
    ]
    props["parameters"]["maxProperties"] = 64
    props["parameters"]["additionalProperties"]["maxLength"] = 4096
    props["parameters"]["x-kubernetes-validations"] = [
        _rule("self == oldSelf", "spec.parameters is immutable; create a new BatchExecution")
    ]
    props["restart"]["x-kubernetes-validations"] = [
        _rule("self >= oldSelf", "spec.restart can only be increased (bump it to restart)")
    ]
    props["abandon"]["x-kubernetes-validations"] = [
        _rule("self || !oldSelf", "spec.abandon cannot be undone")
    ]
    spec["x-kubernetes-validations"] = [
        _rule(
            "has(self.parameters) == has(oldSelf.parameters)",
            "spec.parameters is immutable; create a new BatchExecution",
        )
    ]
    return spec


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "baton"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["baton", "all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def crds() -> dict[str, dict[str, Any]]:
    """file name → CRD manifest, for both kinds."""
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    job_status = structural(JobStatus, mode="serialization")
    job_status["description"] = str(JobStatus.__doc__)
    batch_job = _crd(
        "BatchJob",
        "batchjobs",
        "bj",
        _job_spec_schema(),
        job_status,
        [
            {"name": "Executions", "type": "integer", "jsonPath": ".status.executions"},
            {"name": "Last", "type": "string", "jsonPath": ".status.lastExecution"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.lastPhase"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
            age,
        ],
        "A job definition: typed parameters and steps (tasklets or chunk steps), run "
        "by creating BatchExecutions.",
    )
    status = structural(ExecutionStatus, mode="serialization")
    status["description"] = str(ExecutionStatus.__doc__)
    batch_execution = _crd(
        "BatchExecution",
        "batchexecutions",
        "bx",
        _execution_spec_schema(),
        status,
        [
            {"name": "Job", "type": "string", "jsonPath": ".spec.job"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt", "priority": 1},
            {
                "name": "Execution",
                "type": "integer",
                "jsonPath": ".status.jobExecutionId",
                "priority": 1,
            },
            age,
        ],
        "One launch of a BatchJob with parameters. Patch spec.stop, spec.abandon or "
        "bump spec.restart to control it; status mirrors the job repository.",
    )
    return {
        "baton.dev_batchjobs.yaml": batch_job,
        "baton.dev_batchexecutions.yaml": batch_execution,
    }


HEADER = "# Generated from the pydantic models by `python -m baton.resources`; do not edit.\n"


def render() -> dict[str, str]:
    """file name → YAML text of each CRD."""
    return {
        name: HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)
        for name, crd in crds().items()
    }


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def parse_execution(doc: dict[str, Any]) -> BatchExecution:
    """A BatchExecution from its manifest or API object (unknown metadata is kept)."""
    return BatchExecution.model_validate(doc)


__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "AutoRestart",
    "BatchExecution",
    "Condition",
    "ExecutionSpec",
    "ExecutionStatus",
    "JobStatus",
    "ObjectMeta",
    "Phase",
    "StepStatus",
    "crds",
    "render",
    "write",
]


if __name__ == "__main__":  # pragma: no cover
    for target in sys.argv[1:] or ["crds"]:
        for p in write(Path(target)):
            print(p)
