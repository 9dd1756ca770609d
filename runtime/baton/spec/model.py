"""The BatchJob schema: pydantic models that are at once the manifest format, the
CRD schema (later generated from them) and what the runtime executes.

Field names are camelCase on the wire (as Kubernetes does), snake_case in Python.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from baton.core.errors import InvalidParameters
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.spec.retention import TtlStrategy
from baton.spec.template import PodTemplate
from baton.spec.values import typed_value

NAME_MAX = 255  # parameter names: the repository's column width
REF_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ParameterSpec(Model):
    """A typed job parameter. Identifying parameters make up the JobInstance key."""

    name: str = Field(min_length=1, description="Parameter name, as passed with -p NAME=VALUE.")
    type: ParamType = Field(default=ParamType.STRING, description="Value type.")
    identifying: bool = Field(
        default=True, description="Whether the value is part of the job instance identity."
    )
    default: Any = Field(default=None, description="Value when none is given; none means required.")
    description: str | None = None

    @model_validator(mode="after")
    def _default_has_type(self) -> ParameterSpec:
        if len(self.name) > NAME_MAX:
            raise ValueError(f"parameter name longer than {NAME_MAX} characters")
        if self.default is not None:
            try:
                typed_value(self.type, self.default)
            except ValueError as e:
                raise ValueError(f"default of parameter '{self.name}': {e}") from None
        return self


class RetryBackoff(Model):
    """Spacing of chunk and item retries: the n-th retry waits
    min(initialSeconds * factor**(n-1), maxSeconds). The wait ends early on a stop or
    a deadline (the chunk is then not committed, and the step stops at its last one)."""

    initial_seconds: float = Field(default=1.0, ge=0, description="Wait before the 1st retry.")
    factor: float = Field(default=2.0, ge=1, le=100, description="Growth per further retry.")
    max_seconds: float = Field(default=60.0, ge=0, description="Longest wait.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        wait = self.initial_seconds if attempt >= 1 else 0.0
        for _ in range(attempt - 1):  # grown step by step: never overflows
            if wait >= self.max_seconds or self.factor == 1:
                break
            wait *= self.factor
        return float(min(wait, self.max_seconds))


class ChunkSpec(Model):
    """Read → process → write, ``size`` items per chunk, one checkpoint per chunk."""

    reader: str = Field(pattern=REF_PATTERN, description="module:attr of the item reader.")
    processor: str | None = Field(
        default=None,
        pattern=REF_PATTERN,
        description="module:attr of the item processor, or of a chunk processor "
        "(an object with process_chunk(items)).",
    )
    writer: str = Field(pattern=REF_PATTERN, description="module:attr of the item writer.")
    reader_args: dict[str, Any] = Field(default_factory=dict, description="Reader keyword args.")
    processor_args: dict[str, Any] = Field(default_factory=dict)
    writer_args: dict[str, Any] = Field(default_factory=dict, description="Writer keyword args.")
    size: int = Field(default=100, ge=1, le=1_000_000, description="Items per chunk.")
    skip_limit: int = Field(default=0, ge=0, description="Skipped items allowed per step.")
    skip: list[str] = Field(default_factory=list, description="Skippable exception types.")
    retry_limit: int = Field(default=0, ge=0, description="Retries per item or chunk.")
    retry: list[str] = Field(default_factory=list, description="Retryable exception types.")
    retry_backoff: RetryBackoff | None = Field(
        default=None, description="Wait between retries (default: retry at once)."
    )


class PartitionsSpec(Model):
    """Fan-out: the step runs once per partition (an Indexed Job in the cluster)."""

    count: int | None = Field(
        default=None, ge=0, le=100_000, description="N partitions (0: only dynamic ones)."
    )
    items: list[Any] | None = Field(
        default=None, description="One partition per item: its args (ctx.partition)."
    )
    from_step: str | None = Field(
        default=None, description="Use the list an earlier step returned as the items."
    )

    @model_validator(mode="after")
    def _one_source(self) -> PartitionsSpec:
        given = [k for k in ("count", "items", "from_step") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("partitions needs exactly one of 'count', 'items' or 'fromStep'")
        return self


class StepBody(Model):
    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Step name.")
    tasklet: str | None = Field(
        default=None, pattern=REF_PATTERN, description="module:attr of a callable run once."
    )
    tasklet_args: dict[str, Any] = Field(default_factory=dict)
    chunk: ChunkSpec | None = None
    allow_start_if_complete: bool = Field(
        default=False, description="Run again on restart even if it completed before."
    )
    partitions: PartitionsSpec | None = None
    parallelism: int | None = Field(
        default=None, ge=1, description="At most this many partitions at once."
    )
    compensate: str | None = Field(
        default=None,
        pattern=REF_PATTERN,
        description="module:attr run to undo this step when the job fails (saga).",
    )
    max_duration_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Time budget per incarnation; the step checkpoints and continues in a new one.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Deadline of each unit (the step, or each partition) in an attempt, "
        "from when its process starts it: then it stops at a chunk boundary (killed after "
        "the grace period) and the execution fails with DeadlineExceeded; restartable.",
    )
    image: str | None = Field(default=None, description="This step's image (cluster only).")
    template: PodTemplate | None = Field(
        default=None, description="Pod template overlay of this step, merged over the job's."
    )

    def _check_kind(self) -> None:
        if (self.tasklet is None) == (self.chunk is None):
            raise ValueError(f"step '{self.name}' needs exactly one of 'tasklet' or 'chunk'")


class BranchSpec(StepBody):
    """A step inside a parallel group or a callback."""

    @model_validator(mode="after")
    def _one_kind(self) -> BranchSpec:
        self._check_kind()
        return self


class StepSpec(StepBody):
    """One entry of the chain: a tasklet, a chunk-oriented step, or a parallel group."""

    parallel: list[BranchSpec] | None = Field(
        default=None, min_length=1, description="Steps run at the same time (a split)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        if self.parallel is not None:
            extra = [
                k
                for k in ("tasklet", "chunk", "partitions", "compensate")
                if getattr(self, k) is not None
            ]
            if extra:
                raise ValueError(
                    f"parallel group '{self.name}' cannot also have {', '.join(extra)}"
                )
        else:
            self._check_kind()
        return self

    @property
    def members(self) -> list[StepBody]:
        """The steps this entry runs: itself, or the members of its group."""
        return list(self.parallel) if self.parallel is not None else [self]


class ConcurrencySpec(Model):
    max_running: int = Field(default=1, ge=1, description="Executions of this job at once.")
    cooldown_seconds: float = Field(default=0, ge=0, description="Pause between launches.")


class JobSpec(Model):
    parameters: list[ParameterSpec] = Field(default_factory=list)
    incrementer: Literal["run.id"] | None = Field(
        default=None, description="Adds an identifying run.id so start-next makes a new instance."
    )
    prevent_restart: bool = Field(default=False, description="Refuse any restart.")
    steps: list[StepSpec] = Field(min_length=1, description="Steps, run in order.")
    on_complete: BranchSpec | None = Field(
        default=None, description="Step run after the job COMPLETED."
    )
    on_failure: BranchSpec | None = Field(
        default=None, description="Step run after the job failed (or was compensated)."
    )
    compensate_on_abandon: bool = Field(
        default=False, description="Run compensations when an execution is abandoned."
    )
    concurrency: ConcurrencySpec | None = None
    queue: str | None = Field(default=None, description="Kueue LocalQueue for the Jobs.")
    image: str | None = Field(default=None, description="Container image (cluster only).")
    template: PodTemplate | None = Field(
        default=None, description="Pod template overlay of every step pod (cluster only)."
    )
    ttl_strategy: TtlStrategy | None = Field(
        default=None, description="When finished BatchExecutions are deleted (cluster only)."
    )

    @model_validator(mode="before")
    @classmethod
    def _name_groups(cls, data: Any) -> Any:
        """A parallel group may omit its name: it is ``parallel-<position>``."""
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            data = dict(data)
            data["steps"] = [
                {**e, "name": f"parallel-{i}"}
                if isinstance(e, dict) and "parallel" in e and "name" not in e
                else e
                for i, e in enumerate(data["steps"], 1)
            ]
        return data

    @model_validator(mode="after")
    def _check_names(self) -> JobSpec:
        seen: set[str] = set()
        for s in self.all_steps(groups=True):
            if s.name in seen:
                raise ValueError(f"duplicate step name '{s.name}'")
            seen.add(s.name)
        earlier: set[str] = set()
        for entry in self.steps:
            for m in entry.members:
                src = m.partitions.from_step if m.partitions else None
                if src is not None and src not in earlier:
                    raise ValueError(f"step '{m.name}': fromStep '{src}' must name an earlier step")
            earlier.update(m.name for m in entry.members)
        return self

    @field_validator("parameters")
    @classmethod
    def _unique_params(cls, params: list[ParameterSpec]) -> list[ParameterSpec]:
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate parameter(s): {', '.join(dupes)}")
        return params

    def all_steps(self, *, groups: bool = False) -> list[StepBody]:
        """Every runnable step: chain steps, group members and callbacks."""
        out: list[StepBody] = []
        for entry in self.steps:
            if groups and entry.parallel is not None:
                out.append(entry)
            out.extend(entry.members)
        out.extend(c for c in (self.on_complete, self.on_failure) if c is not None)
        return out

    def step(self, name: str) -> StepBody:
        for s in self.all_steps():
            if s.name == name:
                return s
        raise KeyError(name)

    def bind(self, raw: dict[str, Any]) -> JobParameters:
        """Check and type raw parameters against the declared ones; fill defaults."""
        declared = {p.name: p for p in self.parameters}
        extra = set(raw) - set(declared)
        if self.incrementer:
            extra.discard(self.incrementer)
        if extra:
            known = ", ".join(sorted(declared)) or "none"
            raise InvalidParameters(
                f"unknown parameter(s) {', '.join(sorted(extra))}; declared: {known}"
            )
        items: list[JobParameter] = []
        for p in self.parameters:
            value = raw.get(p.name, p.default)
            if value is None:
                raise InvalidParameters(
                    f"missing required parameter '{p.name}' ({p.type.value}); "
                    f"pass -p {p.name}=VALUE"
                )
            try:
                typed = typed_value(p.type, value)
            except ValueError as e:
                raise InvalidParameters(f"parameter '{p.name}': {e}") from None
            items.append(JobParameter(p.name, p.type, typed, p.identifying))
        if self.incrementer and self.incrementer in raw:
            try:
                run_id = typed_value(ParamType.INT, raw[self.incrementer])
            except ValueError as e:
                raise InvalidParameters(f"parameter '{self.incrementer}': {e}") from None
            items.append(JobParameter(self.incrementer, ParamType.INT, run_id, True))
        return JobParameters(tuple(items))


class ObjectMeta(Model):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    namespace: str | None = None


class BatchJob(Model):
    """The definition of a job: ``kind: BatchJob``."""

    api_version: Literal["baton.dev/v1alpha1"] = "baton.dev/v1alpha1"
    kind: Literal["BatchJob"] = "BatchJob"
    metadata: ObjectMeta
    spec: JobSpec

    @property
    def name(self) -> str:
        return self.metadata.name
