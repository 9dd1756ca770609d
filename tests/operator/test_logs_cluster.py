"""Logs in a cluster, the pure parts: which step pod is which unit (step, kind,
partition) for ``baton logs NAME``, and the ``status.logs`` links rendered from the
chart's template by the reconciler."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from baton.core.entities import JobExecution
from baton.core.logsources import numbered, select
from baton.core.status import BatchStatus, UnitKind
from baton.spec.model import BatchJob
from baton_operator.config import OperatorConfig
from baton_operator.k8s.podlogs import pod_partition, pod_source, pod_state
from baton_operator.k8s.resources import BatchExecution
from baton_operator.reconcile.actions import PatchStatus
from baton_operator.reconcile.decide import reconcile
from baton_operator.reconcile.loglinks import log_links, render
from baton_operator.reconcile.state import RepositoryState

ROOT = Path(__file__).resolve().parents[2]
CHATTY = BatchJob.model_validate(yaml.safe_load((ROOT / "examples/chatty/job.yaml").read_text()))
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def pod(
    name: str,
    step: str,
    *,
    kind: str = "step",
    index: str | None = None,
    job: str = "bx-1-load",
    created: str = "2026-01-01T00:00:00Z",
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    phase: str = "Running",
) -> dict[str, Any]:
    labels = {
        "baton.dev/execution": "bx",
        "baton.dev/step": step,
        "baton.dev/kind": kind,
        "batch.kubernetes.io/job-name": job,
    }
    if index is not None:
        labels["batch.kubernetes.io/job-completion-index"] = index
    container = {
        "name": "step",
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "command": command or ["baton", "step", "7", step],
    }
    return {
        "metadata": {"name": name, "labels": labels, "creationTimestamp": created},
        "spec": {"containers": [container]},
        "status": {"phase": phase},
    }


def test_a_partition_pod_is_the_partition_at_its_index_of_its_job() -> None:
    fanout = pod("p", "load", index="1", env={"BATON_PARTITIONS": "9,9,9"})
    assert pod_partition(fanout, "3,5,7") == 5  # the Job's annotation wins
    assert pod_partition(fanout, None) == 9  # Job gone: the pod's own environment
    assert pod_partition(pod("p", "load", index="0"), "") is None  # a plain step
    comp = pod("c", "load", kind="compensation", index="0")
    assert pod_partition(comp, "4") == 4  # a compensation's one partition
    gone = pod("c", "load", index="0", command=["baton", "step", "7", "load", "--partition", "6"])
    assert pod_partition(gone, None) == 6


def test_step_compensation_and_callback_pods_are_sources_oldest_first() -> None:
    jobs = {"bx-1-load": "0,1", "bx-1-load-comp": "1", "bx-1-notify-cb": ""}
    pods = [
        pod("b", "load", index="1", created="2026-01-01T00:00:02Z"),
        pod("a", "load", index="0", created="2026-01-01T00:00:01Z", phase="Succeeded"),
        pod("a2", "load", index="1", created="2026-01-01T00:00:05Z"),  # a retry of [1]
        pod("c", "load", kind="compensation", index="0", job="bx-1-load-comp",
            created="2026-01-01T00:00:09Z"),
        pod("n", "notify", kind="callback", index="0", job="bx-1-notify-cb",
            created="2026-01-01T00:00:10Z", phase="Pending"),
        {"metadata": {"name": "other", "labels": {}}},  # not a step pod: ignored
    ]  # fmt: skip
    found = [s for s in (pod_source(p, jobs) for p in pods) if s is not None]
    ordered = numbered(found)
    assert [(s.ref, s.prefix, s.attempt) for s in ordered] == [
        ("a", "load[0]", 1),
        ("b", "load[1]", 1),
        ("a2", "load[1]", 2),
        ("c", "load[1]/compensation", 1),
        ("n", "notify/callback", 1),
    ]
    assert [s.ref for s in select(ordered, step="load", partition=1)] == ["b", "a2", "c"]
    assert [s.ref for s in select(ordered, step="load", attempt=2)] == ["a2"]
    assert [pod_state(p) for p in pods[:5]] == ["running", "ended", "running", "running", "pending"]
    assert found[3].kind is UnitKind.COMPENSATION


def test_links_replace_known_placeholders_encoded_and_keep_other_braces() -> None:
    template = 'https://g.example/explore?q={app="x"}&ns={namespace}&e={execution}&s={step}'
    values = {"namespace": "team a", "execution": "bx/1", "step": "load"}
    assert render(template, values) == (
        'https://g.example/explore?q={app="x"}&ns=team%20a&e=bx%2F1&s=load'
    )
    assert log_links("", CHATTY, values) is None
    links = log_links("{job}/{step}/{executionId}/{attempt}", CHATTY, {
        "job": "chatty", "executionId": 7, "attempt": 2,
    })  # fmt: skip
    assert links == {"say": "chatty/say/7/2", "notify": "chatty/notify/7/2"}


def _mirrored(config: OperatorConfig) -> dict[str, Any]:
    current = JobExecution(
        id=7, instance_id=3, job_name="chatty", version=1, attempt=2,
        status=BatchStatus.COMPLETED, exit_code="", exit_description="", created_at=NOW,
        start_time=NOW, end_time=NOW, last_updated=NOW, owner=None, source_dir=None,
        job_spec=CHATTY.dump(), context={},
    )  # fmt: skip
    bx = BatchExecution.model_validate(
        {
            "metadata": {"name": "talk"},
            "spec": {"job": "chatty", "parameters": {"ticks": 1}},
            "status": {"jobExecutionId": 7},
        }
    )
    actions = reconcile(
        CHATTY, bx, RepositoryState(current), [], config=config, now=NOW, namespace="ns", uid="u"
    )
    return next(a for a in actions if isinstance(a, PatchStatus)).status


def test_the_status_has_a_log_link_per_step_only_when_a_template_is_set() -> None:
    template = "https://logs.example/{namespace}/{execution}/{executionId}/{step}"
    st = _mirrored(OperatorConfig(image="baton:test", logs_url_template=template))
    assert st["logs"] == {
        "say": "https://logs.example/ns/talk/7/say",
        "notify": "https://logs.example/ns/talk/7/notify",
    }
    assert "logs" not in _mirrored(OperatorConfig(image="baton:test"))


def test_the_chart_settings_reach_the_config_and_the_step_pods() -> None:
    from baton_operator.manifests import step_job

    cfg = OperatorConfig.from_env(
        {"BATON_STEP_LOG_FORMAT": "json", "BATON_LOGS_URL_TEMPLATE": "https://x/{step}"}
    )
    assert (cfg.step_log_format, cfg.logs_url_template) == ("json", "https://x/{step}")
    manifest = step_job(
        execution="bx", namespace="ns", uid="u", execution_id=7, attempt=1, step="say",
        config=cfg,
    )  # fmt: skip
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "BATON_LOG_FORMAT", "value": "json"} in env
    assert OperatorConfig.from_env({}).step_log_format == "text"
