"""Namespace-scoped instances through the operator: team-a's and team-b's BatchJob of
one name, launched with the same parameters, are two instances that both complete; the
restart rules and ``maxRunning`` hold per namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from baton.repository import JobRepository
from baton_operator.config import OperatorConfig
from baton_operator.loop import Controller
from fake import FakeCluster

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"
TEAMS = ("team-a", "team-b")


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(NUMBERS))


def job(**spec: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((NUMBERS / "job.yaml").read_text())
    doc["spec"].update(spec)
    return doc


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    for ns in TEAMS:
        c.apply_job(job(), namespace=ns)
    return c


@pytest.fixture
def op(repo: JobRepository, cluster: FakeCluster) -> Controller:
    return Controller(repo, cluster, OperatorConfig(image="baton:test"))


def settle(op: Controller, cluster: FakeCluster, repo: JobRepository, ns: str, name: str) -> Any:
    for _ in range(30):
        op.reconcile(ns, name)
        if not cluster.run_jobs(repo):
            op.reconcile(ns, name)
            break
    return cluster.status(name, ns).get("phase")


def test_same_job_and_parameters_in_two_namespaces_are_two_instances(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    params = {"job": "count-numbers", "parameters": {"count": 40}}
    for ns in TEAMS:
        cluster.apply_execution(f"etl-{ns}", params, namespace=ns)
    assert [settle(op, cluster, repo, ns, f"etl-{ns}") for ns in TEAMS] == ["Completed"] * 2
    a, b = (cluster.status(f"etl-{ns}", ns) for ns in TEAMS)
    assert a["instanceId"] != b["instanceId"]
    assert a["repositoryId"] == b["repositoryId"] == repo.repository_id
    by_ns = {ns: repo.executions(job="count-numbers", namespace=ns) for ns in TEAMS}
    assert [[e.id for e in by_ns[ns]] for ns in TEAMS] == [
        [a["jobExecutionId"]],
        [b["jobExecutionId"]],
    ]
    # the restart rules are per namespace too: team-a's instance is complete
    cluster.apply_execution("again", params, namespace="team-a")
    assert settle(op, cluster, repo, "team-a", "again") == "Rejected"
    conditions = cluster.status("again", "team-a")["conditions"]
    cond = next(c for c in conditions if c["type"] == "Launched")
    assert cond["reason"] == "JobInstanceAlreadyComplete"


def test_max_running_is_per_namespace(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    for ns in TEAMS:
        cluster.apply_job(job(concurrency={"maxRunning": 1}), namespace=ns)
    runs = [("team-a", "a1", 1), ("team-a", "a2", 2), ("team-b", "b1", 1)]
    for ns, name, count in runs:
        cluster.apply_execution(name, {"job": "count-numbers", "parameters": {"count": count}}, ns)
        op.reconcile(ns, name)
    phases = {name: cluster.status(name, ns).get("phase") for ns, name, _ in runs}
    assert phases == {"a1": "Running", "a2": "Queued", "b1": "Running"}
    assert settle(op, cluster, repo, "team-a", "a1") == "Completed"
    assert settle(op, cluster, repo, "team-a", "a2") == "Completed"
    assert settle(op, cluster, repo, "team-b", "b1") == "Completed"
