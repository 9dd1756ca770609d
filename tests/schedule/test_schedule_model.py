"""``BatchSchedule`` as a user writes it (issue 12, work in progress)."""

from __future__ import annotations

import pytest
import yaml
from baton.core.errors import InvalidDefinition
from baton.schedule.model import BatchSchedule
from baton.schedule.windows import Concurrency
from pydantic import ValidationError

NIGHTLY = """
apiVersion: baton.dev/v1alpha1
kind: BatchSchedule
metadata: {name: nightly}
spec:
  schedule: ["0 2 * * *", "0 14 * * 6"]
  timeZone: Europe/Berlin
  job: orders
  windowParameter: day
  parameters: {region: eu}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3600
  backfill: {from: "2026-01-01", to: "2026-01-05", maxRunning: 2}
"""


def test_a_nightly_schedule_reads_as_written() -> None:
    bs = BatchSchedule.model_validate(yaml.safe_load(NIGHTLY))
    engine = bs.spec.engine()
    assert engine.crons == ("0 2 * * *", "0 14 * * 6")
    assert engine.concurrency is Concurrency.FORBID
    assert engine.starting_deadline_seconds == 3600
    assert bs.spec.backfill is not None and bs.spec.backfill.max_running == 2
    assert bs.dump()["spec"]["backfill"]["from"] == "2026-01-01"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": "0 25 * * *"}, "Bad hour"),
        ({"timeZone": "Nowhere/Land"}, "not an IANA zone"),
    ],
)
def test_a_schedule_that_cannot_fire_is_refused(change: dict[str, str], message: str) -> None:
    doc = yaml.safe_load(NIGHTLY)
    doc["spec"].update(change)
    with pytest.raises(InvalidDefinition, match=message):
        BatchSchedule.model_validate(doc).spec.engine()


def test_unknown_fields_and_policies_are_refused() -> None:
    doc = yaml.safe_load(NIGHTLY)
    doc["spec"]["concurrencyPolicy"] = "Sometimes"
    with pytest.raises(ValidationError):
        BatchSchedule.model_validate(doc)
    doc = yaml.safe_load(NIGHTLY)
    doc["spec"]["scheduel"] = "* * * * *"
    with pytest.raises(ValidationError):
        BatchSchedule.model_validate(doc)
