"""Deadlines in the real cluster, through kubectl only: a step past its timeoutSeconds
and an execution past its spec.deadlineSeconds end Failed with the condition
DeadlineExceeded, and a restart resumes from the checkpoint and completes, every item
written exactly once."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from conftest import Database, Kubectl, Postgres

from .support import REPO, execution, patch, rows, status, wait_phase

pytestmark = pytest.mark.e2e

WORKDIR = "/opt/baton/examples/numbers"


def _numbers_job(kubectl: Kubectl, ns: str, name: str, **load: Any) -> None:
    """The count-numbers example as ``name``, its load step with ``load`` added."""
    doc = yaml.safe_load((REPO / "examples" / "numbers" / "job.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = name
    for step in doc["spec"]["steps"]:
        if step["name"] == "load":
            step.update(load)
    kubectl.apply(doc, ns)


def _condition(st: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), None)


def _load(st: dict[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in st["steps"] if s["name"] == "load"))


def test_step_timeout_fails_then_restart_resumes(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    # 300 items at 50 ms, 50 a chunk: 2.5 s a chunk, 15 s of work; the load step may
    # take 10 s, so the first attempt stops after 4 or 5 chunks and the second
    # (a fresh 10 s) finishes the 1 or 2 left.
    _numbers_job(kubectl, ns, "count-timeout", timeoutSeconds=10)
    execution(
        kubectl, ns, "late", "count-timeout", {"count": 300, "delayMs": 50}, workingDir=WORKDIR
    )
    st = wait_phase(kubectl, ns, "late", "Failed", "Completed", timeout=300)
    assert st["phase"] == "Failed", st
    cond = _condition(st, "DeadlineExceeded")
    assert cond and (cond["status"], cond["reason"]) == ("True", "TimeoutSeconds"), st
    assert "DeadlineExceeded: step 'load' ran past its timeoutSeconds (10s)" in cond["message"]
    assert "DeadlineExceeded" in st["exitDescription"]
    load = _load(st)
    assert load["status"] == "FAILED" and 0 < load["writeCount"] < 300, load
    assert load["writeCount"] % 50 == 0  # stopped at a chunk boundary
    committed = load["writeCount"]
    # a timed-out pod exits 8 (FailIndex): its index is not retried
    pods = kubectl.pods(ns, "baton.dev/execution=late,baton.dev/step=load")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    assert rows(postgres, operator, 300) == (committed, committed)

    # each restart has a fresh 10 s and resumes after the last chunk; a loaded machine
    # may need more than one to finish the rest
    for restart in range(1, 5):
        patch(kubectl, ns, "late", {"restart": restart})
        kubectl.wait_until(
            "the restart observed",
            lambda r=restart: status(kubectl, ns, "late").get("observedRestart") == r or None,
            timeout=120,
        )
        st = wait_phase(kubectl, ns, "late", "Completed", "Failed", timeout=300)
        assert _load(st)["readCount"] <= 300 - committed, st  # resumed after the last chunk
        committed += _load(st)["writeCount"]
        assert rows(postgres, operator, 300) == (committed, committed)
        if st["phase"] == "Completed":
            break
        assert _condition(st, "DeadlineExceeded"), st
    assert st["phase"] == "Completed", st
    assert (st["attempt"], st["observedRestart"]) == (restart + 1, restart)
    assert _condition(st, "DeadlineExceeded") is None, st
    assert rows(postgres, operator, 300) == (300, 300)


def test_execution_deadline_stops_and_fails_then_restart_completes(
    kubectl: Kubectl, ns: str, operator: Database, postgres: Postgres
) -> None:
    _numbers_job(kubectl, ns, "count-deadline")
    execution(
        kubectl, ns, "overdue", "count-deadline", {"count": 450, "delayMs": 50},
        workingDir=WORKDIR, deadlineSeconds=20, stopGracePeriodSeconds=30,
    )  # fmt: skip
    st = wait_phase(kubectl, ns, "overdue", "Failed", "Completed", "Stopped", timeout=300)
    assert st["phase"] == "Failed", st
    cond = _condition(st, "DeadlineExceeded")
    assert cond and (cond["status"], cond["reason"]) == ("True", "DeadlineSeconds"), st
    assert st["exitDescription"].startswith(
        "DeadlineExceeded: the execution ran past its deadline of 20s"
    ), st
    # (the deadline may come before the load step started, on a slow node)
    load = next((s for s in st["steps"] if s["name"] == "load"), {"writeCount": 0})
    assert load.get("status", "STOPPED") == "STOPPED" and load["writeCount"] < 450, load
    assert load["writeCount"] % 50 == 0  # stopped at a chunk boundary
    committed = load["writeCount"]
    assert rows(postgres, operator, 450) == (committed, committed)
    # the step Jobs carry the last-resort hard stop (deadline left + grace + margin)
    jobs = kubectl.json("-n", ns, "get", "jobs", "-l", "baton.dev/execution=overdue")["items"]
    assert jobs and all(
        0 < j["spec"].get("activeDeadlineSeconds", 0) <= 20 + 30 + 60 for j in jobs
    ), [j["spec"].get("activeDeadlineSeconds") for j in jobs]

    # a restart resumes (a longer deadline this time: the field may change)
    patch(kubectl, ns, "overdue", {"restart": 1, "deadlineSeconds": 600})
    st = wait_phase(kubectl, ns, "overdue", "Completed", "Failed", timeout=300)
    assert st["phase"] == "Completed", st
    assert _condition(st, "DeadlineExceeded") is None, st
    assert _load(st)["readCount"] == 450 - committed
    assert rows(postgres, operator, 450) == (450, 450)
    assert status(kubectl, ns, "overdue")["attempt"] == 2
