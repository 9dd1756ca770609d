"""The BatchJob schema: pydantic models that are at once the manifest format, the
CRD schema (later generated from them) and what the runtime executes.

Field names are camelCase on the wire (as Kubernetes does), snake_case in Python.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from baton.domain import JobParameter, JobParameters, ParamType, parse_value
from baton.errors import InvalidDefinition, InvalidParameters

API_VERSION = "baton.dev/v1alpha1"
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
        if self.default is not None:
            try:
                parse_value(self.type, self.default)
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


class StepSpec(Model):
    """One step of the job: a tasklet (run once) or a chunk-oriented step."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Step name.")
    tasklet: str | None = Field(
        default=None, pattern=REF_PATTERN, description="module:attr of a callable run once."
    )
    tasklet_args: dict[str, Any] = Field(default_factory=dict)
    chunk: ChunkSpec | None = None
    allow_start_if_complete: bool = Field(
        default=False, description="Run again on restart even if it completed before."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        if (self.tasklet is None) == (self.chunk is None):
            raise ValueError(f"step '{self.name}' needs exactly one of 'tasklet' or 'chunk'")
        return self


class JobSpec(Model):
    parameters: list[ParameterSpec] = Field(default_factory=list)
    incrementer: Literal["run.id"] | None = Field(
        default=None, description="Adds an identifying run.id so start-next makes a new instance."
    )
    prevent_restart: bool = Field(default=False, description="Refuse any restart.")
    steps: list[StepSpec] = Field(min_length=1, description="Steps, run in order.")
    image: str | None = Field(default=None, description="Container image (cluster only).")

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[StepSpec]) -> list[StepSpec]:
        seen: set[str] = set()
        for s in steps:
            if s.name in seen:
                raise ValueError(f"duplicate step name '{s.name}'")
            seen.add(s.name)
        return steps

    @field_validator("parameters")
    @classmethod
    def _unique_params(cls, params: list[ParameterSpec]) -> list[ParameterSpec]:
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate parameter(s): {', '.join(dupes)}")
        return params

    def step(self, name: str) -> StepSpec:
        for s in self.steps:
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
                typed = parse_value(p.type, value)
            except ValueError as e:
                raise InvalidParameters(f"parameter '{p.name}': {e}") from None
            items.append(JobParameter(p.name, p.type, typed, p.identifying))
        if self.incrementer and self.incrementer in raw:
            try:
                run_id = parse_value(ParamType.INT, raw[self.incrementer])
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


def parse_job(doc: Any, source: str = "manifest") -> BatchJob:
    if not isinstance(doc, dict):
        raise InvalidDefinition(f"{source}: expected a BatchJob mapping, got {type(doc).__name__}")
    if doc.get("kind") not in (None, "BatchJob"):
        raise InvalidDefinition(f"{source}: kind is {doc.get('kind')!r}, expected BatchJob")
    try:
        return BatchJob.model_validate(doc)
    except ValidationError as e:
        raise InvalidDefinition(f"{source}: invalid BatchJob: {first_error(e)}") from None


def load_manifests(path: Path) -> list[BatchJob]:
    """All BatchJob documents of a YAML file (other kinds are ignored)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidDefinition(f"cannot read manifest {path}: {e.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InvalidDefinition(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    jobs = [
        parse_job(d, str(path))
        for d in docs
        if not (isinstance(d, dict) and d.get("kind") not in (None, "BatchJob"))
    ]
    if not jobs:
        raise InvalidDefinition(f"{path}: no BatchJob document found")
    return jobs


def parse_cli_params(pairs: list[str]) -> dict[str, str]:
    """``-p name=value`` pairs into a mapping; the value may contain '='."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][\w.\-]*$", name.strip()):
            raise InvalidParameters(f"bad parameter {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out
