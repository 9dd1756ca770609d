"""A BatchJob's status: its BatchExecutions counted by phase, the newest named."""

from __future__ import annotations

from baton_operator.jobstatus import Member, job_status


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
