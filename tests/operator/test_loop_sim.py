"""The operator end to end against an in-memory API server and a real repository:
the reconciler, the applier, the flow engine and the step runtime together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton.repository import JobRepository
from baton_operator.applier import open_step
from baton_operator.config import OperatorConfig
from baton_operator.loop import Controller
from fake import FakeCluster
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(NUMBERS))


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.apply_job(yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    return c


@pytest.fixture
def op(repo: JobRepository, cluster: FakeCluster) -> Controller:
    return Controller(repo, cluster, OperatorConfig(image="baton:test"))


def settle(op: Controller, cluster: FakeCluster, repo: JobRepository, name: str) -> str | None:
    """Reconcile and run Jobs until nothing more happens; return the phase."""
    for _ in range(30):
        op.reconcile("default", name)
        if not cluster.run_jobs(repo):
            op.reconcile("default", name)
            break
    return cluster.status(name).get("phase")


def rows(repo: JobRepository, count: int) -> tuple[int, int]:
    engine = create_engine(repo.url)
    with engine.connect() as c:
        total, distinct = c.execute(
            text("SELECT count(*), count(DISTINCT n) FROM numbers WHERE count_to = :c"),
            {"c": count},
        ).one()
    engine.dispose()
    return int(total), int(distinct)


def test_completes_with_counts_and_status(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("c1", {"job": "count-numbers", "parameters": {"count": 120}})
    assert settle(op, cluster, repo, "c1") == "Completed"
    st = cluster.status("c1")
    assert st["progress"] == "100%"
    assert (st["readCount"], st["writeCount"]) == (120, 120)
    assert [s["name"] for s in st["steps"]] == ["prepare", "load", "check"]
    assert all(s["status"] == "COMPLETED" for s in st["steps"])
    assert st["attempt"] == 1 and st["jobExecutionId"] and st["instanceId"]
    assert st["startTime"] and st["endTime"]
    assert sorted(cluster.jobs) == ["c1-1-check", "c1-1-load", "c1-1-prepare"]
    assert rows(repo, 120) == (120, 120)
    reasons = [r for _, r, _ in cluster.events]
    assert reasons[0] == "Launched" and reasons[-1] == "Completed"
    launched = next(c for c in st["conditions"] if c["type"] == "Launched")
    assert launched["status"] == "True"


def test_a_restarted_operator_never_doubles_work(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("c2", {"job": "count-numbers", "parameters": {"count": 10}})
    op.reconcile("default", "c2")
    assert list(cluster.jobs) == ["c2-1-prepare"]
    # a second operator (after a crash) reconciles the same state: no new Job, no launch
    other = Controller(repo, cluster, op.config)
    other.reconcile("default", "c2")
    op.reconcile("default", "c2")
    assert list(cluster.jobs) == ["c2-1-prepare"]
    assert cluster.writes["create jobs"] == 1
    assert len(repo.executions()) == 1
    assert settle(other, cluster, repo, "c2") == "Completed"


def test_relaunch_after_a_crash_between_launch_and_status_adopts_the_execution(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("c3", {"job": "count-numbers", "parameters": {"count": 5}})
    original = cluster.patch_status
    cluster.patch_status = lambda *a, **k: None  # type: ignore[method-assign]
    with pytest.raises(Exception):  # noqa: B017 - the applier's loop gives up: no status
        for _ in range(3):
            op.reconcile("default", "c3", max_rounds=1)
        raise RuntimeError("status never written")
    cluster.patch_status = original  # type: ignore[method-assign]
    assert settle(op, cluster, repo, "c3") == "Completed"
    assert len(repo.executions()) == 1


def test_a_launch_whose_status_was_lost_is_adopted_after_many_later_launches(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    """Found by its owner tag, not among the job's newest executions: 60 launches of the
    same job after it (a burst) do not hide it, so it is not launched twice."""
    cluster.apply_execution("lost", {"job": "count-numbers", "parameters": {"count": 5}})
    original = cluster.patch_status
    cluster.patch_status = lambda *a, **k: None  # type: ignore[method-assign]
    with pytest.raises(Exception):  # noqa: B017 - the applier's loop gives up: no status
        op.reconcile("default", "lost", max_rounds=1)
        raise RuntimeError("status never written")
    cluster.patch_status = original  # type: ignore[method-assign]
    (first,) = repo.executions()
    for i in range(60):
        cluster.apply_execution(
            f"later-{i}", {"job": "count-numbers", "parameters": {"count": 9 + i}}
        )
        op.reconcile("default", f"later-{i}", max_rounds=2)
    assert len(repo.executions()) == 61
    op.reconcile("default", "lost")
    assert cluster.status("lost")["jobExecutionId"] == first.id
    assert len(repo.executions()) == 61  # adopted, not launched again


def test_second_execution_of_a_completed_instance_is_rejected(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("a", {"job": "count-numbers", "parameters": {"count": 7}})
    assert settle(op, cluster, repo, "a") == "Completed"
    cluster.apply_execution("b", {"job": "count-numbers", "parameters": {"count": 7}})
    assert settle(op, cluster, repo, "b") == "Rejected"
    cond = next(c for c in cluster.status("b")["conditions"] if c["type"] == "Launched")
    assert (cond["status"], cond["reason"]) == ("False", "JobInstanceAlreadyComplete")
    assert "b-1-prepare" not in cluster.jobs
    job = batch_job_status(cluster, lambda s: s.get("phases") == {"Completed": 1, "Rejected": 1})
    assert job == {
        "executions": 2,
        "phases": {"Completed": 1, "Rejected": 1},
        "lastExecution": "b",
        "lastPhase": "Rejected",
    }
    # deleting an execution updates its job's counts
    status = cluster.status("b")
    del cluster.executions[("default", "b")]
    op.deleted("default", "b", status)
    job = batch_job_status(cluster, lambda s: s.get("executions") == 1)
    assert (job["executions"], job["phases"], job["lastExecution"]) == (1, {"Completed": 1}, "a")


def batch_job_status(cluster: FakeCluster, done: Callable[[dict[str, Any]], bool]) -> Any:
    """The BatchJob's status once ``done`` holds: a BatchJob's status is written at most
    once a second (the rest by a timer), so it may lag its executions' phases."""
    deadline = time.monotonic() + 5
    while True:
        job = cluster.batch_jobs[("default", "count-numbers")].get("status") or {}
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_batch_job_status_counts_executions_an_operator_restart_has_not_seen_yet(
    repo: JobRepository, cluster: FakeCluster
) -> None:
    for name in ("x", "y", "z"):
        cluster.apply_execution(name, {"job": "count-numbers", "parameters": {"count": 3}})
    fresh = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    settle(fresh, cluster, repo, "x")
    job = batch_job_status(cluster, lambda s: s.get("phases", {}).get("Completed") == 1)
    assert job["executions"] == 3 and job["phases"]["Completed"] == 1
    assert job["lastExecution"] == "z"


def test_bad_parameters_and_missing_job(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("bad", {"job": "count-numbers", "parameters": {"count": "x"}})
    assert settle(op, cluster, repo, "bad") == "Rejected"
    cond = cluster.status("bad")["conditions"][0]
    assert cond["reason"] == "InvalidParameters" and "count" in cond["message"]
    cluster.apply_execution("nojob", {"job": "nope", "parameters": {}})
    assert settle(op, cluster, repo, "nojob") == "Pending"
    cond = cluster.status("nojob")["conditions"][0]
    assert cond["reason"] == "BatchJobNotFound"


def _run_load_in_background(
    op: Controller, cluster: FakeCluster, repo: JobRepository, name: str
) -> threading.Thread:
    op.reconcile("default", name)
    cluster.run_jobs(repo)  # prepare
    op.reconcile("default", name)  # creates the load Job
    load = next(j for n, j in cluster.jobs.items() if n.endswith("-load"))
    t = threading.Thread(target=cluster.run_job, args=(repo, load), daemon=True)
    t.start()
    eid = cluster.status(name)["jobExecutionId"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        steps = [s for s in repo.step_executions(eid) if s.step_name == "load"]
        if steps and steps[0].commit_count >= 2:
            break
        time.sleep(0.02)
    return t


def test_stop_then_restart_resumes_exactly_once(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    # 2000 items: a loaded machine still stops it mid-step
    spec: dict[str, Any] = {"job": "count-numbers", "parameters": {"count": 2000, "delayMs": 3}}
    cluster.apply_execution("s", spec)
    t = _run_load_in_background(op, cluster, repo, "s")
    cluster.patch_spec("s", {"stop": True})
    op.reconcile("default", "s")
    # Stopping; or already Stopped when the step saw the stop before the reconcile's
    # next round (it runs one more after writing a phase)
    assert cluster.status("s")["phase"] in ("Stopping", "Stopped")
    t.join(20)
    assert settle(op, cluster, repo, "s") == "Stopped"
    st = cluster.status("s")
    load = next(s for s in st["steps"] if s["name"] == "load")
    assert load["status"] == "STOPPED" and 0 < load["writeCount"] < 2000
    assert "check" not in {s["name"] for s in st["steps"]}
    # restart: bump spec.restart → attempt 2 resumes from the checkpoint
    cluster.patch_spec("s", {"stop": False, "restart": 1})
    assert settle(op, cluster, repo, "s") == "Completed"
    st = cluster.status("s")
    assert (st["attempt"], st["observedRestart"]) == (2, 1)
    assert "s-2-load" in cluster.jobs and "s-2-prepare" not in cluster.jobs  # skipped: done
    assert rows(repo, 2000) == (2000, 2000)


def test_abandon_then_restart_is_refused(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution(
        "ab", {"job": "count-numbers", "parameters": {"count": 300, "delayMs": 2}}
    )
    t = _run_load_in_background(op, cluster, repo, "ab")
    # abandon while running: the wrong state is a condition, not a crash
    cluster.patch_spec("ab", {"abandon": True})
    op.reconcile("default", "ab")
    cond = next(c for c in cluster.status("ab")["conditions"] if c["type"] == "Abandoned")
    assert cond["reason"] == "WrongState" and "stop it first" in cond["message"]
    cluster.patch_spec("ab", {"stop": True})
    op.reconcile("default", "ab")
    t.join(20)
    assert settle(op, cluster, repo, "ab") == "Abandoned"
    cluster.patch_spec("ab", {"restart": 1})
    assert settle(op, cluster, repo, "ab") == "Abandoned"
    cond = next(c for c in cluster.status("ab")["conditions"] if c["type"] == "Restarted")
    assert cond["reason"] == "WrongState"
    # and a new execution of the same instance is refused by the restart table
    cluster.apply_execution("ab2", {"job": "count-numbers", "parameters": {"count": 300}})
    assert settle(op, cluster, repo, "ab2") == "Rejected"
    cond = next(c for c in cluster.status("ab2")["conditions"] if c["type"] == "Launched")
    assert cond["reason"] == "JobRestart"


def test_stale_execution_is_recovered_when_its_job_disappears(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("st", {"job": "count-numbers", "parameters": {"count": 30}})
    op.reconcile("default", "st")
    eid = cluster.status("st")["jobExecutionId"]
    # the pod opened the step, then its node died and the Job was deleted
    execution = repo.get_execution(eid)
    open_step(repo, execution, "prepare")
    cluster.delete_job("st-1-prepare")
    op.reconcile("default", "st")
    st = cluster.status("st")
    assert st["phase"] == "Failed"
    assert "its Job is gone" in st["exitDescription"]
    assert any(r == "StepLost" for _, r, _ in cluster.events)
    # restartable: it resumes and completes
    cluster.patch_spec("st", {"restart": 1})
    assert settle(op, cluster, repo, "st") == "Completed"


def test_stop_grace_period_deletes_pods(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution(
        "g", {"job": "count-numbers", "parameters": {"count": 3}, "stopGracePeriodSeconds": 0}
    )
    op.reconcile("default", "g")
    eid = cluster.status("g")["jobExecutionId"]
    open_step(repo, repo.get_execution(eid), "prepare")
    cluster.patch_spec("g", {"stop": True})
    op.reconcile("default", "g")
    time.sleep(1.1)
    op.reconcile("default", "g")
    assert cluster.jobs["g-1-prepare"].pods_deleted >= 1


def test_api_writes_per_lifecycle_are_bounded(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("w", {"job": "count-numbers", "parameters": {"count": 50}})
    assert settle(op, cluster, repo, "w") == "Completed"
    # 3 Jobs + status patches and events per transition; no write on a no-op reconcile
    before = sum(cluster.writes.values())
    for _ in range(5):
        op.reconcile("default", "w")
    assert sum(cluster.writes.values()) == before
    assert cluster.writes["create jobs"] == 3
    assert before < 30, cluster.writes


def _examples(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    folder = ROOT / "examples" / name
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    cluster.apply_job(yaml.safe_load((folder / "job.yaml").read_text()))


def test_partitions_run_as_one_indexed_job_then_reduce(
    op: Controller, cluster: FakeCluster, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _examples(cluster, monkeypatch, "mapreduce")
    cluster.apply_execution("wc", {"job": "word-count", "parameters": {"parts": 5}})
    assert settle(op, cluster, repo, "wc") == "Completed"
    indexed = [j for n, j in cluster.jobs.items() if n.startswith("wc-1-count-p")]
    assert len(indexed) == 1
    spec = indexed[0].manifest["spec"]
    assert (spec["completions"], spec["parallelism"]) == (5, 3)
    count = next(s for s in cluster.status("wc")["steps"] if s["name"] == "count")
    assert (count["partitionsTotal"], count["partitionsDone"]) == (5, 5)
    assert cluster.status("wc")["progress"] == "100%"


def test_saga_compensations_and_callback_run_as_jobs(
    op: Controller, cluster: FakeCluster, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _examples(cluster, monkeypatch, "saga")
    cluster.apply_execution(
        "bob", {"job": "onboard-user", "parameters": {"user": "bob", "failAt": "init-settings"}}
    )
    assert settle(op, cluster, repo, "bob") == "Compensated"
    names = sorted(cluster.jobs)
    assert "bob-1-send-email-comp" in names and "bob-1-create-account-comp" in names
    assert "bob-1-init-settings-comp" not in names  # it failed: nothing to undo
    assert "bob-1-onboarding-failed-cb" in names
    cb = cluster.jobs["bob-1-onboarding-failed-cb"].manifest
    env = cb["spec"]["template"]["spec"]["containers"][0]["env"]
    outcome = next(e["value"] for e in env if e["name"] == "BATON_OUTCOME")
    assert outcome in ("FAILED", "COMPENSATED")
    st = cluster.status("bob")
    assert "init-settings" in st["exitDescription"]


def test_concurrency_queues_extra_executions(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    doc = yaml.safe_load((NUMBERS / "job.yaml").read_text())
    doc["metadata"]["name"] = "one-at-a-time"
    doc["spec"]["concurrency"] = {"maxRunning": 1}
    cluster.apply_job(doc)
    cluster.apply_execution("q1", {"job": "one-at-a-time", "parameters": {"count": 5}})
    cluster.apply_execution("q2", {"job": "one-at-a-time", "parameters": {"count": 6}})
    op.reconcile("default", "q1")
    op.reconcile("default", "q2")
    assert cluster.status("q1")["phase"] == "Running"
    assert cluster.status("q2")["phase"] == "Queued"
    assert not any(n.startswith("q2-") for n in cluster.jobs)
    assert settle(op, cluster, repo, "q1") == "Completed"
    assert settle(op, cluster, repo, "q2") == "Completed"


def test_deleting_a_running_execution_fails_its_job_execution(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("del", {"job": "count-numbers", "parameters": {"count": 9}})
    op.reconcile("default", "del")
    status = cluster.status("del")
    del cluster.executions[("default", "del")]
    for n in [n for n in cluster.jobs if n.startswith("del-")]:
        cluster.delete_job(n)  # the garbage collector follows the ownerReferences
    op.deleted("default", "del", status)
    assert repo.get_execution(status["jobExecutionId"]).status.value == "FAILED"
    # so the same instance can be launched again (it resumes)
    cluster.apply_execution("del2", {"job": "count-numbers", "parameters": {"count": 9}})
    assert settle(op, cluster, repo, "del2") == "Completed"
    assert cluster.status("del2")["attempt"] == 2


def test_abandon_with_compensate_on_abandon_runs_the_saga_as_jobs(
    op: Controller, cluster: FakeCluster, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _examples(cluster, monkeypatch, "saga")
    job = cluster.batch_jobs[("default", "onboard-user")]
    job["spec"]["compensateOnAbandon"] = True
    cluster.apply_execution("eve", {"job": "onboard-user", "parameters": {"user": "eve"}})
    op.reconcile("default", "eve")
    cluster.run_jobs(repo)  # create-account completes
    cluster.patch_spec("eve", {"stop": True})
    assert settle(op, cluster, repo, "eve") == "Stopped"
    assert "eve-1-create-account-comp" not in cluster.jobs  # a stop alone undoes nothing
    cluster.patch_spec("eve", {"abandon": True})
    op.reconcile("default", "eve")
    assert cluster.status("eve")["phase"] == "Compensating"
    assert settle(op, cluster, repo, "eve") == "Compensated"
    assert "eve-1-create-account-comp" in cluster.jobs
    st = cluster.status("eve")
    assert not [c for c in st["conditions"] if c["reason"] == "WrongState"], st["conditions"]
    # abandoned means never again: a restart is refused
    cluster.patch_spec("eve", {"restart": 1})
    op.reconcile("default", "eve")
    restarted = next(c for c in cluster.status("eve")["conditions"] if c["type"] == "Restarted")
    assert restarted["status"] == "False"


def test_abandon_without_compensations_due_just_abandons(
    op: Controller, cluster: FakeCluster, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _examples(cluster, monkeypatch, "saga")
    cluster.batch_jobs[("default", "onboard-user")]["spec"]["compensateOnAbandon"] = True
    cluster.apply_execution(
        "zed", {"job": "onboard-user", "parameters": {"user": "zed"}, "stop": True}
    )
    assert settle(op, cluster, repo, "zed") == "Stopped"
    cluster.patch_spec("zed", {"abandon": True})
    assert settle(op, cluster, repo, "zed") == "Abandoned"
    assert not any(n.endswith("-comp") for n in cluster.jobs)


def test_spec_context_seeds_the_job_context(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    spec = {"job": "count-numbers", "parameters": {"count": 4}, "context": {"region": "eu"}}
    cluster.apply_execution("ctx", spec)
    assert settle(op, cluster, repo, "ctx") == "Completed"
    execution = repo.get_execution(cluster.status("ctx")["jobExecutionId"])
    assert execution.context["region"] == "eu"


def test_a_failing_compensation_ends_compensation_failed(
    op: Controller, cluster: FakeCluster, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "jobs"))
    monkeypatch.setenv("FLOW_SLEEP", "0")
    cluster.apply_job(
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": "bad-saga"},
            "spec": {
                "steps": [
                    {"name": "a", "tasklet": "flowjobs:stamp", "compensate": "flowjobs:fail"},
                    {"name": "b", "tasklet": "flowjobs:fail"},
                ]
            },
        }
    )
    cluster.apply_execution("bs", {"job": "bad-saga"})
    assert settle(op, cluster, repo, "bs") == "CompensationFailed"
    assert "compensation of step 'a' failed" in cluster.status("bs")["exitDescription"]
    reasons = [r for _, r, _ in cluster.events]
    assert reasons[-1] == "CompensationFailed"


def test_an_execution_the_repository_lost_fails_once_with_a_condition(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    cluster.apply_execution("gone", {"job": "count-numbers", "parameters": {"count": 3}})
    cluster.executions[("default", "gone")]["status"] = {"phase": "Running", "jobExecutionId": 999}
    assert op.reconcile("default", "gone") is not None  # no exception
    st = cluster.status("gone")
    assert st["phase"] == "Failed"
    cond = next(c for c in st["conditions"] if c["type"] == "Launched")
    assert (cond["status"], cond["reason"]) == ("False", "ExecutionLost")
    writes = sum(cluster.writes.values())
    op.reconcile("default", "gone")
    assert sum(cluster.writes.values()) == writes  # said once


def test_a_namespace_being_deleted_gets_its_step_jobs_deleted(
    op: Controller, cluster: FakeCluster, repo: JobRepository
) -> None:
    """Kubernetes deletes a namespace's pods first and waits for them; a failed step pod
    awaiting its replacement (backoffLimitPerIndex) keeps its finalizer until its Job
    goes. So the operator deletes the step Jobs of a namespace being deleted."""
    cluster.apply_execution("ns1", {"job": "count-numbers", "parameters": {"count": 5}})
    op.reconcile("default", "ns1")
    assert list(cluster.jobs) == ["ns1-1-prepare"]
    assert op.release_namespace("other") == 0 and list(cluster.jobs) == ["ns1-1-prepare"]
    assert op.release_namespace("default") == 1
    assert cluster.jobs == {} and cluster.writes["delete jobs"] == 1
