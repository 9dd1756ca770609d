"""Two operators with their own job repositories in one cluster: each touches only the
BatchExecutions its repository launched — no status write, no Job, no transition of
its own execution that happens to have the same id — and says so once with a
ForeignExecution event. Also for executions launched before ``status.repositoryId``
existed (the row of their id must be theirs), and for a label selector."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from baton_operator.config import OperatorConfig
from baton_operator.k8s.labels import LABEL_EXECUTION
from baton_operator.k8s.resources import ExecutionStatus
from baton_operator.loop import Controller
from baton_operator.reconcile import foreign, selector
from fake import FakeCluster

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"
SPEC = {"job": "count-numbers", "parameters": {"count": 20}}


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(NUMBERS))


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.apply_job(yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    return c


@pytest.fixture
def other_repo(tmp_path: Path) -> Iterator[JobRepository]:
    r = JobRepository(f"sqlite:///{tmp_path / 'second.db'}")
    yield r
    r.dispose()


def controller(repo: JobRepository, cluster: FakeCluster, **kw: Any) -> Controller:
    return Controller(repo, cluster, OperatorConfig(image="baton:test"), **kw)


def run_jobs_of(cluster: FakeCluster, repo: JobRepository, execution: str) -> int:
    """Run the Jobs of one execution (its pods talk to its own repository)."""
    ran = 0
    for job in list(cluster.jobs.values()):
        mine = job.manifest["metadata"]["labels"][LABEL_EXECUTION] == execution
        if mine and job.active and not job.complete and not job.failed:
            cluster.run_job(repo, job)
            ran += 1
    return ran


def settle(op: Controller, other: Controller, cluster: FakeCluster, name: str) -> Any:
    """Drive ``name`` with its operator while the other one reconciles it every round."""
    for _ in range(30):
        other.reconcile("default", name)
        op.reconcile("default", name)
        if not run_jobs_of(cluster, op.repo, name):
            op.reconcile("default", name)
            break
    return cluster.status(name).get("phase")


def test_neither_operator_touches_the_others_executions(
    repo: JobRepository, other_repo: JobRepository, cluster: FakeCluster
) -> None:
    first, second = controller(repo, cluster), controller(other_repo, cluster)
    assert repo.repository_id != other_repo.repository_id
    cluster.apply_execution("a", SPEC)
    first.reconcile("default", "a")  # launched by the first operator
    cluster.apply_execution("b", {**SPEC, "parameters": {"count": 30}})
    second.reconcile("default", "b")
    a, b = cluster.status("a"), cluster.status("b")
    # the same id in two repositories: two different executions
    assert a["jobExecutionId"] == b["jobExecutionId"]
    assert (a["repositoryId"], b["repositoryId"]) == (
        repo.repository_id,
        other_repo.repository_id,
    )
    writes, jobs = cluster.writes["patch status"], set(cluster.jobs)
    for _ in range(3):
        second.reconcile("default", "a")
        first.reconcile("default", "b")
    assert cluster.writes["patch status"] == writes and set(cluster.jobs) == jobs
    warnings = [(t, m) for t, r, m in cluster.events if r == foreign.REASON]
    assert [t for t, _ in warnings] == ["Warning", "Warning"]
    assert "launched by job repository" in warnings[0][1]
    assert settle(first, second, cluster, "a") == "Completed"
    assert settle(second, first, cluster, "b") == "Completed"
    assert [r for _, r, _ in cluster.events].count(foreign.REASON) == 2  # once each
    assert len(repo.executions()) == len(other_repo.executions()) == 1


def test_operators_with_overlapping_selectors_launch_once(
    repo: JobRepository,
    other_repo: JobRepository,
    cluster: FakeCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both read the new execution before either launched it: the claim of
    status.repositoryId is conditional on the resourceVersion read, so the second one
    conflicts, re-reads, finds it another repository's and launches nothing."""
    first, second = controller(repo, cluster), controller(other_repo, cluster)
    cluster.apply_execution("a", SPEC)
    stale = copy.deepcopy(cluster.executions[("default", "a")])
    first.reconcile("default", "a")
    real = cluster.get_execution
    reads = iter([stale])
    monkeypatch.setattr(cluster, "get_execution", lambda ns, n: next(reads, None) or real(ns, n))
    second.reconcile("default", "a")
    assert cluster.writes["conflicts"] == 1
    assert cluster.status("a")["repositoryId"] == repo.repository_id
    assert other_repo.executions() == [] and len(repo.executions()) == 1
    monkeypatch.setattr(cluster, "get_execution", real)
    assert settle(first, second, cluster, "a") == "Completed"
    assert other_repo.executions() == []


def test_a_deleted_foreign_execution_leaves_the_same_id_alone(
    repo: JobRepository, other_repo: JobRepository, cluster: FakeCluster
) -> None:
    """The bug: the second operator failed its own running execution #1 when the first
    operator's execution #1 was deleted (or restarted through the id collision)."""
    first, second = controller(repo, cluster), controller(other_repo, cluster)
    cluster.apply_execution("a", SPEC)
    first.reconcile("default", "a")
    cluster.apply_execution("b", SPEC)
    second.reconcile("default", "b")
    status = cluster.status("a")
    obj = cluster.executions.pop(("default", "a"))
    second.deleted("default", "a", status, job="count-numbers", uid=obj["metadata"]["uid"])
    assert other_repo.get_execution(status["jobExecutionId"]).status is BatchStatus.STARTED
    first.deleted("default", "a", status, job="count-numbers", uid=obj["metadata"]["uid"])
    assert repo.get_execution(status["jobExecutionId"]).status is BatchStatus.FAILED


def test_an_execution_from_before_repository_ids_is_checked_by_its_row(
    repo: JobRepository, other_repo: JobRepository, cluster: FakeCluster
) -> None:
    first, second = controller(repo, cluster), controller(other_repo, cluster)
    cluster.apply_execution("b", SPEC)
    second.reconcile("default", "b")  # other_repo's execution 1: b's
    cluster.apply_execution("a", SPEC)
    first.reconcile("default", "a")
    # as an operator without repository ids left it
    del cluster.executions[("default", "a")]["status"]["repositoryId"]
    writes = cluster.writes["patch status"]
    second.reconcile("default", "a")  # its row 1 was launched for b, not for a
    assert cluster.writes["patch status"] == writes
    assert [r for _, r, _ in cluster.events].count(foreign.REASON) == 1
    assert settle(first, second, cluster, "a") == "Completed"  # the first's own row


def test_the_label_selector_splits_executions(repo: JobRepository, cluster: FakeCluster) -> None:
    sel = selector.parse("baton.dev/release=second")
    op = controller(repo, cluster, selector=sel)
    cluster.apply_execution("x", SPEC)
    assert op.reconcile("default", "x") is None
    assert cluster.status("x") == {} and not cluster.jobs and not cluster.events
    cluster.executions[("default", "x")]["metadata"]["labels"] = {"baton.dev/release": "second"}
    assert op.reconcile("default", "x") is not None
    assert cluster.status("x")["repositoryId"] == repo.repository_id and cluster.jobs


def test_an_operator_watching_other_namespaces_leaves_this_one_alone(
    repo: JobRepository, cluster: FakeCluster
) -> None:
    op = controller(repo, cluster, namespaces=frozenset({"team-a"}))
    cluster.apply_execution("x", SPEC)
    assert op.reconcile("default", "x") is None
    assert cluster.status("x") == {} and not cluster.jobs and not cluster.events


def test_label_selectors_parse_like_kubectl() -> None:
    sel = selector.parse(" team=a, gpu ,!legacy")
    assert selector.matches(sel, {"team": "a", "gpu": ""})
    assert not selector.matches(sel, {"team": "b", "gpu": ""})
    assert not selector.matches(sel, {"team": "a"})
    assert not selector.matches(sel, {"team": "a", "gpu": "1", "legacy": "x"})
    assert selector.matches(selector.parse(""), None)
    for bad in ("team in (a,b)", "team!=a", "a b=c"):
        with pytest.raises(ValueError, match="label selector"):
            selector.parse(bad)


def test_foreign_decides_from_the_status_first() -> None:
    mine = "11111111-1111-1111-1111-111111111111"
    own = ExecutionStatus.model_validate({"repositoryId": mine, "jobExecutionId": 1})
    assert foreign.foreign(own, mine, job="j") is None
    other = ExecutionStatus.model_validate({"repositoryId": "x", "jobExecutionId": 1})
    assert "launched by job repository x" in (foreign.foreign(other, mine, job="j") or "")
    assert foreign.foreign(ExecutionStatus(), mine, job="j") is None  # nobody's yet
    legacy = ExecutionStatus.model_validate({"jobExecutionId": 1})
    assert foreign.needs_check(legacy) and not foreign.needs_check(own)
    assert foreign.foreign(legacy, mine, job="j", row=None) is None  # lost, not foreign
