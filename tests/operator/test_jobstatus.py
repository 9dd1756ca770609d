"""A BatchJob's status: its BatchExecutions counted by phase, the newest named."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from baton_operator.jobstatus import JobStatuses, Member, job_status
from fake import FakeCluster


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


def _cluster() -> FakeCluster:
    """The in-memory API server with one BatchJob ``ns/j`` and no executions."""
    cluster = FakeCluster()
    cluster.apply_job({"metadata": {"name": "j"}, "spec": {}}, namespace="ns")
    return cluster


def _status(cluster: FakeCluster) -> dict[str, Any]:
    return dict(cluster.batch_jobs[("ns", "j")].get("status") or {})


def _wait_for(cluster: FakeCluster, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The BatchJob's status once ``done`` holds (the timer writes it), or after 5 s."""
    deadline = time.monotonic() + 5
    while not done(status := _status(cluster)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def _execution(name: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "creationTimestamp": f"2026-01-01T00:00:{name}Z"}
    return {"metadata": meta, "spec": {"job": "j"}}


def test_a_burst_of_phase_changes_is_written_a_few_times_and_ends_exact() -> None:
    cluster = _cluster()
    statuses = JobStatuses(cluster, interval=0.3)
    for phase in ("", "Running", "Completed"):
        for n in range(100):
            statuses.note(_execution(f"{n:02d}"), phase)
            statuses.flush()
    writes = "patch batchjobs/status"
    assert cluster.writes[writes] == 1  # the first flush; the rest waits for the interval
    status = _wait_for(cluster, lambda s: s.get("phases") == {"Completed": 100})
    assert status["phases"] == {"Completed": 100}  # the timer wrote the last state
    assert status["lastExecution"] == "99" and cluster.writes[writes] == 2


def test_a_failed_write_is_written_again_later() -> None:
    cluster = _cluster()
    statuses = JobStatuses(cluster, interval=0.1)
    real = cluster.patch_job_status
    cluster.patch_job_status = lambda *a: (_ for _ in ()).throw(RuntimeError("api down"))  # type: ignore[method-assign]
    statuses.note(_execution("01"), "Running")
    with pytest.raises(RuntimeError):
        statuses.flush()
    cluster.patch_job_status = real  # type: ignore[method-assign]
    assert _wait_for(cluster, bool)["phases"] == {"Running": 1}
