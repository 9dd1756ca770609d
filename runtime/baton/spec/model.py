"""The BatchJob schema: pydantic models that are at once the manifest format, the
CRD schema (later generated from them) and what the runtime executes.

Field names are camelCase on the wire (as Kubernetes does), snake_case in Python.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from baton.core.errors import InvalidDefinition, InvalidParameters
from baton.core.parameters import JobParameter, JobParameters, ParamType, parse_value

API_VERSION = "baton.dev/v1alpha1"
MAX_DEPTH = 64  # nesting of manifests and --ctx values: far beyond real use, far below recursion
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # int parameters must fit a BIGINT column
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


class ChunkSpec(Model):
    """Read → process → write, ``size`` items per chunk, one checkpoint per chunk."""

    reader: str = Field(pattern=REF_PATTERN, description="module:attr of the item reader.")
    processor: str | None = Field(
        default=None, pattern=REF_PATTERN, description="module:attr of the item processor."
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

    def chain_order(self) -> list[str]:
        """Runnable step names in chain order (group members in their listed order)."""
        return [m.name for entry in self.steps for m in entry.members]

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


def first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "manifest"
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {msg}{more}"


def typed_value(kind: ParamType, raw: Any) -> Any:
    """:func:`parse_value` plus what the repository and the steps can hold: an int
    within 64 bits (BIGINT), a finite float, text without NUL or lone surrogates."""
    if kind is not ParamType.STRING and isinstance(raw, str) and len(raw) > 100:
        raise ValueError(f"expected a {kind.value}, got {len(raw)} characters: {_short(raw)}")
    try:
        value = parse_value(kind, raw)
    except OverflowError:
        raise ValueError(f"expected a {kind.value}, got {_short(raw)}") from None
    if kind is ParamType.INT and not INT_MIN <= value <= INT_MAX:
        raise ValueError(
            f"expected an integer from {INT_MIN} to {INT_MAX} (64 bits), got {_short(raw)}"
        )
    if kind is ParamType.FLOAT and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {_short(raw)}")
    if kind is ParamType.STRING:
        problem = text_problem(value)
        if problem:
            raise ValueError(f"{problem}: {_short(raw)}")
    return value


def _short(raw: Any, limit: int = 60) -> str:
    text = repr(raw)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-4:]}"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (PostgreSQL refuses NUL; UTF-8 has no lone
    surrogates, which is what undecodable bytes of argv or a file become), or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains bytes that are not UTF-8"
    return None


def plain_problem(value: Any, where: str = "", depth: int = 0) -> str | None:
    """Why a manifest or context value cannot be stored as JSON and read back the same
    (nesting beyond :data:`MAX_DEPTH`, bad text, a non-finite number), prefixed with
    where it is (``spec.steps[0].name: ...``), or None."""
    at = f"{where}: " if where else ""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{at}{problem}" if problem else None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{at}{value!r} is not a finite number"
    if isinstance(value, dict):
        items = [(f"{where}.{k}" if where else str(k), k, v) for k, v in value.items()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = [(f"{where}[{i}]", None, v) for i, v in enumerate(value)]
    else:
        return None
    for path, key, v in items:
        bad_key = text_problem(key) if isinstance(key, str) else None
        shown = path.encode("utf-8", "backslashreplace").decode()[:120]
        problem = f"{shown}: {bad_key}" if bad_key else plain_problem(v, shown, depth + 1)
        if problem:
            return problem
    return None


def parse_job(doc: Any, source: str = "manifest") -> BatchJob:
    if not isinstance(doc, dict):
        raise InvalidDefinition(f"{source}: expected a BatchJob mapping, got {type(doc).__name__}")
    if doc.get("kind") not in (None, "BatchJob"):
        raise InvalidDefinition(f"{source}: kind is {_short(doc.get('kind'))}, expected BatchJob")
    problem = plain_problem(doc)
    if problem:
        raise InvalidDefinition(f"{source}: invalid BatchJob: {problem}")
    try:
        job = BatchJob.model_validate(doc)
    except ValidationError as e:
        raise InvalidDefinition(f"{source}: invalid BatchJob: {first_error(e)}") from None
    try:  # the definition is snapshotted as JSON into every execution
        json.dumps(job.dump(), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidDefinition(f"{source}: invalid BatchJob: not storable as JSON: {e}") from None
    return job


def load_manifests(path: Path) -> list[BatchJob]:
    """All BatchJob documents of a YAML file (other kinds are ignored)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidDefinition(f"cannot read manifest {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidDefinition(
            f"{path}: not a YAML manifest: byte 0x{data[e.start]:02x} at offset {e.start} "
            "is not UTF-8 text"
        ) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InvalidDefinition(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise InvalidDefinition(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    jobs = [
        parse_job(d, str(path))
        for d in docs
        if not (isinstance(d, dict) and d.get("kind") not in (None, "BatchJob"))
    ]
    if not jobs:
        raise InvalidDefinition(f"{path}: no BatchJob document found")
    return jobs


def parse_cli_context(pairs: list[str]) -> dict[str, Any]:
    """``--ctx key=value`` pairs into an initial job context: a value that parses as
    strict JSON (a number, true, a list, an object, a quoted string) keeps its type,
    anything else (``NaN`` too) is a string. A JSON number out of float range, nesting
    beyond :data:`MAX_DEPTH` or text that cannot be stored is refused."""
    out: dict[str, Any] = {}
    for key, value in parse_cli_params(pairs, what="context value").items():
        try:
            out[key] = json.loads(value, parse_constant=_no_constant)
        except RecursionError:
            raise InvalidParameters(
                f"context value '{key}': nested deeper than {MAX_DEPTH} levels"
            ) from None
        except ValueError:
            out[key] = value
        problem = plain_problem(out[key], depth=1)
        if problem:
            raise InvalidParameters(f"context value '{key}': {problem}")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_cli_params(pairs: list[str], what: str = "parameter") -> dict[str, str]:
    """``-p name=value`` pairs into a mapping; the value may contain '='."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][\w.\-]*$", name.strip()):
            raise InvalidParameters(f"bad {what} {_short(pair)}: expected NAME=VALUE")
        problem = text_problem(value)
        if problem:
            raise InvalidParameters(f"bad {what} '{name.strip()}': {problem}: {_short(value)}")
        out[name.strip()] = value
    return out
