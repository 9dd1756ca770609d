"""``kind: BatchSchedule`` (short name ``bs``): a job launched at every window of one or
more cron expressions, the window bound to an identifying parameter. The same model
serves the operator (CRD, generated) and ``baton schedule run`` (locally);
``baton schedule run`` reads it from a file (:func:`load_schedule`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from baton.core.errors import InvalidDefinition
from baton.schedule.windows import Concurrency, Schedule, check
from baton.spec.manifests import first_error, read_documents
from baton.spec.model import NAME_PATTERN, Model, ObjectMeta
from baton.spec.template import PodTemplate


class BackfillSpec(Model):
    """Declarative backfill: the windows in ``[from, to]`` (COMPLETED ones skipped)."""

    from_: str = Field(alias="from", description="First window (ISO 8601, in timeZone).")
    to: str = Field(description="Last window (ISO 8601, in timeZone).")
    max_running: int = Field(default=1, ge=1, le=100, description="Windows running at once.")


class ScheduleSpec(Model):
    schedule: str | list[str] = Field(
        description="Cron expression(s) (5 fields; several allowed: one window per instant)."
    )
    time_zone: str = Field(default="UTC", description="IANA time zone of the expressions.")
    job: str = Field(pattern=NAME_PATTERN, max_length=253, description="BatchJob to launch.")
    window_parameter: str = Field(
        description="Identifying date/datetime parameter of the job that receives the "
        "window's scheduled time: one job instance per window (so a COMPLETED window never "
        "runs again)."
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Other job parameters, as in a BatchExecution."
    )
    context: dict[str, Any] = Field(default_factory=dict, description="Initial job context.")
    template: PodTemplate | None = Field(default=None, description="Pod template overlay.")
    working_dir: str | None = Field(
        default=None, description="Directory inside the image that holds the job's code."
    )
    concurrency_policy: Concurrency = Field(
        default=Concurrency.ALLOW,
        description="Allow; Forbid (a window waits while one runs); Replace (the running "
        "one is stopped at a chunk boundary first).",
    )
    starting_deadline_seconds: int | None = Field(
        default=None, ge=0, description="A window later than this is Missed, never run."
    )
    suspend: bool = Field(default=False, description="No new windows while true.")
    restart_failed_windows: bool = Field(
        default=True, description="Restart a FAILED window from its checkpoint."
    )
    successful_executions_history_limit: int = Field(
        default=3, ge=0, description="Completed BatchExecutions kept (the oldest deleted)."
    )
    failed_executions_history_limit: int = Field(
        default=1, ge=0, description="Other finished BatchExecutions kept."
    )
    backfill: BackfillSpec | None = Field(
        default=None,
        description="Run the windows in [from, to] (COMPLETED ones skipped, FAILED ones "
        "restarted), oldest first, at most maxRunning at once; progress in status.backfill.",
    )

    @field_validator("schedule")
    @classmethod
    def _nonempty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("at least one cron expression")
        return v

    def engine(self) -> Schedule:
        """The engine's view, checked (bad expression or zone: InvalidDefinition)."""
        crons = (self.schedule,) if isinstance(self.schedule, str) else tuple(self.schedule)
        s = Schedule(
            crons=crons,
            time_zone=self.time_zone,
            starting_deadline_seconds=self.starting_deadline_seconds,
            concurrency=self.concurrency_policy,
            suspend=self.suspend,
            restart_failed_windows=self.restart_failed_windows,
        )
        check(s)
        return s


class BatchSchedule(Model):
    api_version: Literal["baton.dev/v1alpha1"] = "baton.dev/v1alpha1"
    kind: Literal["BatchSchedule"] = "BatchSchedule"
    metadata: ObjectMeta
    spec: ScheduleSpec

    @property
    def name(self) -> str:
        return self.metadata.name


def load_schedule(path: Path) -> BatchSchedule:
    """The one BatchSchedule document of a YAML file (other kinds, such as the BatchJob
    it launches, may sit next to it), validated and its engine settings checked."""
    found = [
        d for d in read_documents(path) if isinstance(d, dict) and d.get("kind") == "BatchSchedule"
    ]
    if len(found) != 1:
        raise InvalidDefinition(f"{path}: expected one BatchSchedule document, found {len(found)}")
    try:
        schedule = BatchSchedule.model_validate(found[0])
    except ValidationError as e:
        raise InvalidDefinition(f"{path}: invalid BatchSchedule: {first_error(e)}") from None
    schedule.spec.engine()
    return schedule
