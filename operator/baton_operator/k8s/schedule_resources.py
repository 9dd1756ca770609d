"""The ``BatchSchedule`` resource's status (its spec is :class:`baton.schedule.model.
ScheduleSpec`): what the schedule controller writes, and the CRD generated from both."""

from __future__ import annotations

from pydantic import Field

from baton_operator.k8s.resources import Condition, Mutable

SCHEDULES_PLURAL = "batchschedules"
LABEL_SCHEDULE = "baton.dev/schedule"  # on the BatchExecutions a schedule created
LABEL_WINDOW = "baton.dev/window"  # their window stamp


class BackfillStatus(Mutable):
    """Progress of spec.backfill."""

    from_: str = Field(alias="from", description="spec.backfill.from being carried out.")
    to: str = Field(description="spec.backfill.to being carried out.")
    total: int = Field(default=0, description="Windows in [from, to].")
    completed: int = Field(default=0, description="Windows COMPLETED.")
    running: int = Field(default=0, description="Windows running now.")
    failed: int = Field(default=0, description="Windows FAILED with no restart left.")
    done: bool = Field(default=False, description="Every window has its final word.")


class ScheduleStatus(Mutable):
    """What the operator observed and decided at the schedule's last tick."""

    last_scheduled_window: str | None = Field(
        default=None, description="The newest window handled (launched, found done or missed)."
    )
    next_window: str | None = Field(default=None, description="The next window (RFC 3339).")
    active: list[str] | None = Field(
        default=None, description="Names of the schedule's BatchExecutions still running."
    )
    last_successful_window: str | None = Field(
        default=None, description="The newest window whose instance COMPLETED."
    )
    backfill: BackfillStatus | None = Field(default=None, description="spec.backfill progress.")
    observed_generation: int | None = Field(
        default=None, description="The spec generation the last tick acted on."
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Ready (the schedule ticks), MissedWindows, Invalid."
    )
