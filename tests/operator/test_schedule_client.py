"""``baton backfill NAME`` against a cluster: the times are checked against the
schedule (its zone, from <= to) before spec.backfill is set; nothing is patched else."""

from __future__ import annotations

from typing import Any

import pytest
from baton.core.errors import InvalidParameters
from baton_operator.k8s.schedules import ClusterSchedules

SCHEDULE = {
    "metadata": {"name": "nightly", "namespace": "ns"},
    "spec": {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "job": "j",
             "windowParameter": "day"},
}  # fmt: skip


class Api:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        return SCHEDULE

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        self.patches.append(args[-1])
        return SCHEDULE


def test_backfill_sets_the_spec() -> None:
    api = Api()
    ClusterSchedules("ns", api=api).backfill("nightly", "2026-01-01", "2026-01-05", 2)
    assert api.patches == [
        {"spec": {"backfill": {"from": "2026-01-01", "to": "2026-01-05", "maxRunning": 2}}}
    ]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [("2026-01-05", "2026-01-01", "is after to"), ("tomorrow", "2026-01-01", "ISO 8601")],
)
def test_bad_times_patch_nothing(start: str, end: str, message: str) -> None:
    api = Api()
    with pytest.raises(InvalidParameters, match=message):
        ClusterSchedules("ns", api=api).backfill("nightly", start, end, 1)
    assert api.patches == []
