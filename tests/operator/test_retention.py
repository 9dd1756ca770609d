"""Retention in the operator: which TTL a finished BatchExecution gets and when it is
due (from its status, so a restarted operator computes the same), the step Jobs' TTL by
outcome, the sweep that deletes only what is due and unchanged, and — with the real
reconciler and repository — that neither a finished step Job going away nor a finished
execution being deleted fails anything."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from baton.spec.retention import TtlStrategy
from baton_operator.config import OperatorConfig
from baton_operator.k8s.resources import Phase
from baton_operator.loop import Controller
from baton_operator.manifests import step_job
from baton_operator.reconcile.retention import JobTtl, execution_ttl, expiry, step_job_ttl
from baton_operator.retention import Retention
from fake import FakeCluster

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"
T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


class FakeCleanup:
    """Deletes from the fake cluster with the API server's preconditions."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.deleted: list[str] = []
        self.ttls: dict[str, int | None] = {}

    def delete_execution(self, namespace: str, name: str, uid: str, resource_version: str) -> bool:
        obj = self.cluster.executions.get((namespace, name))
        if obj is None:
            return False
        meta = obj["metadata"]
        if meta["uid"] != uid or meta["resourceVersion"] != resource_version:
            return False  # 409
        del self.cluster.executions[(namespace, name)]
        self.deleted.append(name)
        return True

    def set_job_ttl(self, namespace: str, name: str, seconds: int | None) -> None:
        self.ttls[name] = seconds


def execution(phase: str | None, **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"endTime": "2026-11-29T12:00:00Z"} if phase else {}
    if phase:
        status["phase"] = phase
    return {
        "metadata": {
            "namespace": "ns",
            "name": "x",
            "uid": "u1",
            "resourceVersion": "7",
            "creationTimestamp": "2026-11-29T11:00:00Z",
        },
        "spec": {"job": "j", **spec},
        "status": status,
    }


STRATEGY = TtlStrategy(seconds_after_success=60, seconds_after_failure=3600)


@pytest.mark.parametrize(
    ("phase", "own", "strategy", "ttl"),
    [
        (Phase.COMPLETED, None, STRATEGY, 60),
        (Phase.FAILED, None, STRATEGY, 3600),
        (Phase.STOPPED, None, STRATEGY, 3600),
        (Phase.COMPENSATED, None, STRATEGY, 3600),
        (Phase.REJECTED, None, STRATEGY, 3600),
        (Phase.COMPLETED, 5, STRATEGY, 5),  # the execution's own wins
        (Phase.FAILED, 0, STRATEGY, 0),
        (Phase.COMPLETED, None, None, None),  # none: kept
        (Phase.COMPLETED, None, TtlStrategy(seconds_after_failure=1), None),
        (Phase.RUNNING, 5, STRATEGY, None),  # never while it runs
        (Phase.STOPPING, 0, None, None),
        (Phase.QUEUED, 0, None, None),
        (Phase.COMPENSATING, 0, None, None),
    ],
)
def test_execution_ttl(
    phase: Phase, own: int | None, strategy: TtlStrategy | None, ttl: int
) -> None:
    assert execution_ttl(own, strategy, phase) == ttl


def test_due_is_computed_from_the_status() -> None:
    found = expiry(execution("Completed", ttlSecondsAfterFinished=30), None)
    assert found is not None
    assert (found.namespace, found.name, found.uid, found.resource_version) == (
        "ns",
        "x",
        "u1",
        "7",
    )
    assert found.due == T0 + dt.timedelta(seconds=30)
    assert expiry(execution("Failed"), STRATEGY).due == T0 + dt.timedelta(hours=1)  # type: ignore[union-attr]
    assert expiry(execution("Running", ttlSecondsAfterFinished=0), STRATEGY) is None
    assert expiry(execution(None, ttlSecondsAfterFinished=0), STRATEGY) is None
    # a restart asked for and not answered yet: not finished
    pending = execution("Failed", ttlSecondsAfterFinished=0, restart=1)
    assert expiry(pending, None) is None
    pending["status"]["observedRestart"] = 1
    assert expiry(pending, None) is not None
    # stopped by a disruption, restarting by itself: not finished either
    auto = execution("Stopped", ttlSecondsAfterFinished=0, autoRestart={"onDisruption": True})
    auto["status"].update(attempt=2, disruptedAttempt=2, autoRestarts=0)
    assert expiry(auto, None) is None
    auto["status"]["autoRestarts"] = 3  # none left: it stays Stopped
    assert expiry(auto, None) is not None
    gone = execution("Completed", ttlSecondsAfterFinished=0)
    gone["metadata"]["deletionTimestamp"] = "2026-11-29T12:00:01Z"
    assert expiry(gone, None) is None


def test_a_rejected_execution_counts_from_its_launched_condition() -> None:
    obj = execution("Rejected", ttlSecondsAfterFinished=10)
    del obj["status"]["endTime"]
    obj["status"]["conditions"] = [
        {"type": "Launched", "status": "False", "lastTransitionTime": "2026-11-29T11:30:00Z"}
    ]
    assert expiry(obj, None).due == dt.datetime(2026, 11, 29, 11, 30, 10, tzinfo=dt.UTC)  # type: ignore[union-attr]
    obj["status"]["conditions"] = []
    assert expiry(obj, None).due == dt.datetime(2026, 11, 29, 11, 0, 10, tzinfo=dt.UTC)  # type: ignore[union-attr]


def job(condition: str | None, ttl: int | None) -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True"}] if condition else []
    spec = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    return {
        "metadata": {"namespace": "ns", "name": "x-1-a"},
        "spec": spec,
        "status": {"conditions": conditions},
    }


def test_step_job_ttl_by_outcome() -> None:
    cfg = OperatorConfig(step_ttl_after_success=60, step_ttl_after_failure=86400)
    assert cfg.step_ttl_at_creation == 86400  # the longer, until the outcome is known
    assert step_job_ttl(job("Complete", 86400), cfg) == JobTtl(60)
    assert step_job_ttl(job("Failed", 86400), cfg) is None  # already right
    assert step_job_ttl(job("Complete", 60), cfg) is None
    assert step_job_ttl(job(None, 86400), cfg) is None  # still running
    assert step_job_ttl(job("FailureTarget", 86400), cfg) is None  # not ended yet
    keep = OperatorConfig(step_ttl_after_success=60)
    assert keep.step_ttl_at_creation is None  # failures kept for good: no TTL at first
    assert step_job_ttl(job("Complete", None), keep) == JobTtl(60)
    assert step_job_ttl(job("Failed", None), keep) is None
    assert step_job_ttl(job("Failed", 60), keep) == JobTtl(None)


def test_step_jobs_are_created_with_the_longer_ttl() -> None:
    def manifest(cfg: OperatorConfig) -> dict[str, Any]:
        return step_job(
            execution="x", namespace="ns", uid="u", execution_id=1, attempt=1, step="a",
            config=cfg,
        )  # fmt: skip

    both = OperatorConfig(step_ttl_after_success=0, step_ttl_after_failure=600)
    assert manifest(both)["spec"]["ttlSecondsAfterFinished"] == 600
    assert "ttlSecondsAfterFinished" not in manifest(OperatorConfig())["spec"]
    env = {"BATON_STEP_TTL_AFTER_SUCCESS": "30", "BATON_STEP_TTL_AFTER_FAILURE": ""}
    assert OperatorConfig.from_env(env).step_ttl_after_success == 30
    assert OperatorConfig.from_env(env).step_ttl_after_failure is None


def test_the_sweep_deletes_only_what_is_due_and_unchanged() -> None:
    cluster = FakeCluster()
    api = FakeCleanup(cluster)
    now = [T0]
    retention = Retention(api, OperatorConfig(), clock=lambda: now[0])
    for name, ttl in (("a", 10), ("b", 100), ("c", 10)):
        cluster.apply_execution(name, {"job": "j", "ttlSecondsAfterFinished": ttl})
        cluster.patch_status(
            "default", name, {"phase": "Completed", "endTime": "2026-11-29T12:00:00Z"}
        )
        retention.note(cluster.executions[("default", name)], None)
    cluster.patch_spec("c", {"restart": 0})  # c changed after it was read
    assert retention.sweep() == 0
    now[0] = T0 + dt.timedelta(seconds=11)
    assert retention.sweep() == 1
    assert api.deleted == ["a"] and ("default", "c") in cluster.executions
    assert [e.name for e in retention.pending()] == ["b"]  # c waits for its next event
    retention.forget("default", "b")
    now[0] = T0 + dt.timedelta(days=1)
    assert retention.sweep() == 0


# ---------------------------------------------------------------- with the reconciler


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(NUMBERS))


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.apply_job(yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    return c


def settle(op: Controller, cluster: FakeCluster, repo: JobRepository, name: str) -> str | None:
    for _ in range(30):
        op.reconcile("default", name)
        if not cluster.run_jobs(repo):
            op.reconcile("default", name)
            break
    return cluster.status(name).get("phase")


def test_a_finished_step_job_going_away_fails_nothing(
    repo: JobRepository, cluster: FakeCluster
) -> None:
    """A step Job deleted by its TTL while the execution goes on (a later step runs)."""
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    cluster.apply_execution("c1", {"job": "count-numbers", "parameters": {"count": 50}})
    op.reconcile("default", "c1")
    assert sorted(cluster.jobs) == ["c1-1-prepare"]
    cluster.run_jobs(repo)
    op.reconcile("default", "c1")
    assert "c1-1-load" in cluster.jobs
    cluster.delete_job("c1-1-prepare")  # the TTL controller's doing
    op.reconcile("default", "c1")
    assert settle(op, cluster, repo, "c1") == "Completed"
    assert not [r for _, r, _ in cluster.events if r == "StepLost"]
    assert "c1-1-prepare" not in cluster.jobs  # not made again


def test_a_finished_execution_is_deleted_after_its_ttl_and_stays_completed(
    repo: JobRepository, cluster: FakeCluster
) -> None:
    doc = yaml.safe_load((NUMBERS / "job.yaml").read_text())
    doc["spec"]["ttlStrategy"] = {"secondsAfterSuccess": 0, "secondsAfterFailure": 3600}
    cluster.apply_job(doc)
    api = FakeCleanup(cluster)
    retention = Retention(api, OperatorConfig())
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"), retention=retention)
    cluster.apply_execution("c2", {"job": "count-numbers", "parameters": {"count": 30}})
    op.reconcile("default", "c2")
    assert retention.pending() == [] and retention.sweep() == 0  # running: never
    assert settle(op, cluster, repo, "c2") == "Completed"
    op.reconcile("default", "c2")  # the status event of the end
    assert [e.name for e in retention.pending()] == ["c2"]
    body = copy.deepcopy(cluster.executions[("default", "c2")])
    assert retention.sweep() == 1 and api.deleted == ["c2"]
    # what the DELETED watch event does: the repository keeps it COMPLETED
    op.deleted("default", "c2", body["status"], job="count-numbers", uid=body["metadata"]["uid"])
    execution = repo.get_execution(body["status"]["jobExecutionId"])
    assert execution.status is BatchStatus.COMPLETED
    assert op.reconcile("default", "c2") is None
