"""A step pod that cannot start shows on its BatchExecution as condition PodsReady=False
with the pod's own reason and message (issue 11: a missing Secret left the execution at
``Running 0%`` saying nothing), and turns True when that pod starts after all.

The pod documents are the shapes the API server returns (kubectl get pod -o json) for
each way a pod gets stuck."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from baton.repository import JobRepository
from baton_operator.config import OperatorConfig
from baton_operator.handlers import pod_health_event
from baton_operator.k8s.resources import Condition, ExecutionStatus
from baton_operator.loop import Controller
from baton_operator.reconcile.actions import Event, MergeStatus
from baton_operator.reconcile.podhealth import PodHealth, assess, decide
from fake import FakeCluster

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NUMBERS = Path(__file__).resolve().parents[2] / "examples" / "numbers"
SECRET = 'secret "baton-db" not found'


def pod(phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "c1-1-prepare-0-abcde",
            "labels": {"baton.dev/execution": "c1", "job-name": "c1-1-prepare"},
        },
        "status": {"phase": phase, "qosClass": "Burstable", **status},
    }


def waiting(reason: str, message: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    return {
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00Z"},
            {
                "type": "ContainersReady",
                "status": "False",
                "reason": "ContainersNotReady",
                "message": "containers with unready status: [step]",
            },
        ],
        key: [
            {
                "name": "step",
                "image": "baton:dev",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "lastState": {},
                "state": {"waiting": {"reason": reason, "message": message}},
            }
        ],
    }


PULL = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/'
    'nope:1": failed to resolve reference "docker.io/library/nope:1": not found'
)
UNSCHEDULABLE = (
    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (waiting("CreateContainerConfigError", SECRET), "CreateContainerConfigError", SECRET),
        (waiting("ErrImagePull", PULL), "ErrImagePull", PULL),
        (
            waiting("ImagePullBackOff", 'Back-off pulling image "nope:1"'),
            "ImagePullBackOff",
            'Back-off pulling image "nope:1"',
        ),
        (waiting("ErrImagePull", PULL, init=True), "ErrImagePull", PULL),
        (
            {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": UNSCHEDULABLE,
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            },
            "Unschedulable",
            UNSCHEDULABLE,
        ),
    ],
)
def test_a_stuck_pod_is_told_by_its_own_reason(
    status: dict[str, Any], reason: str, message: str
) -> None:
    assert assess(pod(**status)) == PodHealth("c1-1-prepare-0-abcde", False, reason, message)


@pytest.mark.parametrize(
    "status",
    [
        {},  # just created
        {"conditions": [{"type": "PodScheduled", "status": "True"}]},
        waiting("ContainerCreating", ""),  # the normal way up
        {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]},
    ],
)
def test_a_pod_on_its_normal_way_up_says_nothing(status: dict[str, Any]) -> None:
    assert assess(pod(**status)) is None


def test_running_and_finished_pods_have_started() -> None:
    running = {"containerStatuses": [{"name": "step", "state": {"running": {"startedAt": "x"}}}]}
    assert assess(pod("Running", **running)) == PodHealth("c1-1-prepare-0-abcde", True)
    assert assess(pod("Succeeded")) == PodHealth("c1-1-prepare-0-abcde", True)
    ended = {"containerStatuses": [{"name": "step", "state": {"terminated": {"exitCode": 1}}}]}
    assert assess(pod("Failed", **ended)) == PodHealth("c1-1-prepare-0-abcde", True)


def conditions(actions: list[Any]) -> list[dict[str, Any]]:
    merged = [a for a in actions if isinstance(a, MergeStatus)]
    assert len(merged) == 1
    return list(merged[0].patch["conditions"])


STUCK = PodHealth("p1", False, "CreateContainerConfigError", SECRET)


def test_stuck_sets_the_condition_with_the_pods_words_and_one_event() -> None:
    launched = Condition(type="Launched", status="True", reason="Launched")
    actions, blocked = decide(ExecutionStatus(conditions=[launched]), STUCK, NOW)
    assert blocked
    cond = next(c for c in conditions(actions) if c["type"] == "PodsReady")
    assert (cond["status"], cond["reason"]) == ("False", "CreateContainerConfigError")
    assert cond["message"] == f"p1: {SECRET}"
    assert {c["type"] for c in conditions(actions)} == {"Launched", "PodsReady"}  # kept
    assert Event("Warning", "CreateContainerConfigError", f"p1: {SECRET}") in actions


def status_after(actions: list[Any], before: ExecutionStatus) -> ExecutionStatus:
    if not actions:
        return before
    return ExecutionStatus.model_validate({"conditions": conditions(actions)})


def test_the_same_news_twice_writes_nothing_and_back_off_posts_no_second_event() -> None:
    st = status_after(decide(ExecutionStatus(), STUCK, NOW)[0], ExecutionStatus())
    assert decide(st, STUCK, NOW) == ([], True)
    pulling = PodHealth("p1", False, "ErrImagePull", PULL)
    st = status_after(decide(st, pulling, NOW)[0], st)
    actions, _ = decide(st, PodHealth("p1", False, "ImagePullBackOff", "Back-off"), NOW)
    assert conditions(actions)[0]["reason"] == "ImagePullBackOff"
    assert not any(isinstance(a, Event) for a in actions)


def test_only_the_stuck_pod_starting_clears_it() -> None:
    st = status_after(decide(ExecutionStatus(), STUCK, NOW)[0], ExecutionStatus())
    # another pod (a parallel branch) runs: the stuck one is still stuck
    assert decide(st, PodHealth("p2", True), NOW) == ([], True)
    actions, blocked = decide(st, PodHealth("p1", True), NOW)
    assert not blocked
    cond = conditions(actions)[0]
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "Started", "p1: started")
    # a healthy execution never gets the condition: no write for every started pod
    assert decide(ExecutionStatus(), PodHealth("p1", True), NOW) == ([], False)


# ---------------------------------------------------------------- the operator, simulated


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    monkeypatch.syspath_prepend(str(NUMBERS))
    c = FakeCluster()
    c.apply_job(yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    return c


def pods_ready(cluster: FakeCluster, name: str) -> dict[str, Any] | None:
    found = cluster.status(name).get("conditions") or []
    return next((c for c in found if c["type"] == "PodsReady"), None)


def test_operator_shows_a_missing_secret_until_the_pod_starts(
    repo: JobRepository, cluster: FakeCluster
) -> None:
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    cluster.apply_execution("c1", {"job": "count-numbers", "parameters": {"count": 5}})
    op.reconcile("default", "c1")
    stuck = cluster.pod("c1-1-prepare", waiting=("CreateContainerConfigError", SECRET))
    health = assess(stuck)
    assert health is not None
    assert op.record_pod_health("default", "c1", health)
    for _ in range(3):  # the reconciler's own status writes keep it
        op.reconcile("default", "c1")
    assert cluster.status("c1")["phase"] == "Running"
    cond = pods_ready(cluster, "c1")
    assert cond and (cond["status"], cond["reason"]) == ("False", "CreateContainerConfigError")
    assert cond["message"] == f"{stuck['metadata']['name']}: {SECRET}"
    assert ("Warning", "CreateContainerConfigError", cond["message"]) in cluster.events
    # the Secret is created: the same pod starts, the condition clears
    started = assess(cluster.pod("c1-1-prepare"))
    assert started is not None
    assert not op.record_pod_health("default", "c1", started)
    cond = pods_ready(cluster, "c1")
    assert cond and (cond["status"], cond["reason"]) == ("True", "Started")
    for _ in range(10):
        op.reconcile("default", "c1")
        if not cluster.run_jobs(repo):
            break
    assert cluster.status("c1")["phase"] == "Completed"


def test_a_new_attempt_starts_without_the_old_pods_condition(
    repo: JobRepository, cluster: FakeCluster
) -> None:
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    cluster.apply_execution("c2", {"job": "count-numbers", "parameters": {"count": 5}})
    op.reconcile("default", "c2")
    health = assess(cluster.pod("c2-1-prepare", waiting=("ErrImagePull", PULL)))
    assert health is not None and op.record_pod_health("default", "c2", health)
    cluster.patch_spec("c2", {"stop": True})
    op.reconcile("default", "c2")  # no step ever started: stopped at once
    assert cluster.status("c2")["phase"] == "Stopped"
    assert pods_ready(cluster, "c2")["status"] == "False"  # type: ignore[index]  # why
    cluster.patch_spec("c2", {"stop": False, "restart": 1})
    op.reconcile("default", "c2")
    assert cluster.status("c2")["attempt"] == 2
    assert pods_ready(cluster, "c2") is None
    assert op.record_pod_health("default", "c2", PodHealth("gone", True)) is False


def test_the_handler_reads_the_execution_for_a_started_pod_only_when_one_was_stuck(
    repo: JobRepository,
) -> None:
    cluster = FakeCluster()
    cluster.apply_job(yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    op = Controller(repo, cluster, OperatorConfig(image="baton:test"))
    memo = kopf.Memo(controller=op, stuck=set())
    cluster.apply_execution("c3", {"job": "count-numbers", "parameters": {"count": 5}})
    op.reconcile("default", "c3")

    def event(type_: str | None, pod: dict[str, Any]) -> None:
        labels = pod["metadata"]["labels"]
        pod_health_event(type=type_, namespace="default", body=pod, labels=labels, memo=memo)

    running = cluster.pod("c3-1-prepare")
    before = cluster.reads["get batchexecutions"]
    event("MODIFIED", running)
    assert cluster.reads["get batchexecutions"] == before  # healthy: no read per pod event
    event(None, running)  # the listing at the operator's start looks once
    assert cluster.reads["get batchexecutions"] == before + 1
    assert pods_ready(cluster, "c3") is None
    stuck = cluster.pod("c3-1-prepare", waiting=("ImagePullBackOff", "Back-off pulling"))
    event("MODIFIED", stuck)
    assert memo["stuck"] == {("default", "c3")}
    assert pods_ready(cluster, "c3")["reason"] == "ImagePullBackOff"  # type: ignore[index]
    event("DELETED", stuck)  # a deletion says nothing
    event("MODIFIED", running)
    assert memo["stuck"] == set()
    assert pods_ready(cluster, "c3")["status"] == "True"  # type: ignore[index]
