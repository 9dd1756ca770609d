"""A BatchJob's status: its BatchExecutions counted by phase, the newest named."""

from __future__ import annotations

import time
from typing import Any

import pytest
from baton_operator.jobstatus import JobStatuses, Member, job_status
from fake import merge


def test_job_status_counts_phases_and_names_the_newest_execution() -> None:
    assert job_status({}) == {"executions": 0, "phases": {}}
    members = {
        "a": Member("Completed", "2026-01-01T00:00:01Z"),
        "c": Member("", "2026-01-01T00:00:03Z"),
        "b": Member("Failed", "2026-01-01T00:00:02Z"),
    }
    assert job_status(members) == {
        "executions": 3,
        "phases": {"Completed": 1, "Failed": 1, "Pending": 1},
        "lastExecution": "c",
        "lastPhase": "Pending",
    }


class _Cluster:
    """A BatchJob's status as the API server keeps it, with the writes counted."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.writes = 0

    def list_executions(self, namespace: str) -> list[dict[str, Any]]:
        return []

    def get_batch_job(self, namespace: str, name: str) -> dict[str, Any]:
        return {"status": dict(self.status)}

    def patch_job_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.writes += 1
        merge(self.status, patch)


def _execution(name: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "creationTimestamp": f"2026-01-01T00:00:{name}Z"}
    return {"metadata": meta, "spec": {"job": "j"}}


def test_a_burst_of_phase_changes_is_written_a_few_times_and_ends_exact() -> None:
    cluster = _Cluster()
    statuses = JobStatuses(cluster, interval=0.3)  # type: ignore[arg-type]
    for phase in ("", "Running", "Completed"):
        for n in range(100):
            statuses.note(_execution(f"{n:02d}"), phase)
            statuses.flush()
    assert cluster.writes == 1  # the first flush; the rest waits for the interval
    deadline = time.monotonic() + 5
    while cluster.status.get("phases") != {"Completed": 100} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.status["phases"] == {"Completed": 100}  # the timer wrote the last state
    assert cluster.status["lastExecution"] == "99" and cluster.writes == 2


def test_a_failed_write_is_written_again_later() -> None:
    cluster = _Cluster()
    statuses = JobStatuses(cluster, interval=0.1)  # type: ignore[arg-type]
    real = cluster.patch_job_status
    cluster.patch_job_status = lambda *a: (_ for _ in ()).throw(RuntimeError("api down"))  # type: ignore[method-assign]
    statuses.note(_execution("01"), "Running")
    with pytest.raises(RuntimeError):
        statuses.flush()
    cluster.patch_job_status = real  # type: ignore[method-assign]
    deadline = time.monotonic() + 5
    while not cluster.status and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.status["phases"] == {"Running": 1}
