"""How long a finished BatchExecution stays in the cluster: the BatchJob's default
(``spec.ttlStrategy``, Argo's name), separate for success and failure. Its own module,
with the manifest's conventions, so the BatchJob model only gains a field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class TtlStrategy(BaseModel):
    """Seconds after an execution ends before the operator deletes its BatchExecution
    (its Jobs and pods go with it; the repository keeps its record). Unset: kept.
    A BatchExecution's own ``spec.ttlSecondsAfterFinished`` wins over both."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    seconds_after_success: int | None = Field(
        default=None, ge=0, description="After the execution ended Completed."
    )
    seconds_after_failure: int | None = Field(
        default=None,
        ge=0,
        description="After it ended any other way (Failed, Stopped, Abandoned, Rejected, "
        "Compensated, CompensationFailed): usually longer, to look into it.",
    )
