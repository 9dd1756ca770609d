"""The Kopf handlers' event filters: which events may change a decision."""

from __future__ import annotations

from baton_operator.handlers import disrupted, job_ended


def cond(type_: str, status: str = "True") -> dict[str, str]:
    return {"type": type_, "status": status}


def test_a_running_jobs_pod_counters_do_not_reconcile() -> None:
    running = {"active": 20, "succeeded": 7, "ready": 19}
    assert not job_ended("MODIFIED", running, {})
    assert not job_ended("ADDED", running, {})
    assert not job_ended("MODIFIED", {"conditions": [cond("Suspended")]}, {})
    assert not job_ended("MODIFIED", {"conditions": [cond("Complete", "False")]}, {})


def test_a_jobs_end_deletion_or_first_listing_reconciles() -> None:
    for end in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"):
        assert job_ended("MODIFIED", {"conditions": [cond(end)]}, {})
    assert job_ended("DELETED", {}, {})
    assert job_ended("MODIFIED", {}, {"deletionTimestamp": "2026-11-23T00:00:00Z"})
    assert job_ended(None, {}, {})  # the operator's first listing after a (re)start


def test_only_disrupted_pods_are_handled() -> None:
    assert disrupted({"conditions": [cond("Ready"), cond("DisruptionTarget")]})
    assert not disrupted({"conditions": [cond("DisruptionTarget", "False")]})
    assert not disrupted({})


def test_only_namespaces_being_deleted_are_handled() -> None:
    from baton_operator.handlers import terminating

    assert terminating({"deletionTimestamp": "2026-11-23T00:00:00Z"})
    assert not terminating({"name": "ns"})
