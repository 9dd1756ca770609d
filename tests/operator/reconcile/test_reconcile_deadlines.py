"""spec.deadlineSeconds in the reconciler: the stop it asks for, the Failed end it leads
to, the condition DeadlineExceeded, and the Jobs' last-resort activeDeadlineSeconds."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from baton.core.status import DEADLINE_EXCEEDED, BatchStatus
from baton.flow.deadlines import deadline_reason
from baton_operator.k8s.cluster import ObservedJob
from baton_operator.reconcile.actions import (
    CreateJob,
    DeletePods,
    Event,
    FinishExecution,
    PatchStatus,
    RequestStop,
)
from baton_operator.reconcile.deadlines import HARD_STOP_MARGIN_SECONDS
from baton_operator.reconcile.state import RepositoryState
from test_reconcile_decide import NOW, bx, execution, run, step

LOADING = (step("prepare", BatchStatus.COMPLETED), step("load", BatchStatus.STARTED))


def conditions(actions: list[Any]) -> dict[str, dict[str, Any]]:
    [patch] = [a for a in actions if isinstance(a, PatchStatus)]
    return {c["type"]: c for c in patch.status.get("conditions") or []}


def test_past_the_deadline_the_stop_is_asked_for_with_deadline_exceeded() -> None:
    repo = RepositoryState(execution(BatchStatus.STARTED), LOADING)
    status = {"jobExecutionId": 7}
    within = run(bx(status, deadlineSeconds=60), repo, now=NOW + dt.timedelta(seconds=59))
    assert not any(isinstance(a, RequestStop) for a in within)
    late = run(bx(status, deadlineSeconds=60), repo, now=NOW + dt.timedelta(seconds=60))
    stop = next(a for a in late if isinstance(a, RequestStop))
    assert stop == RequestStop(7, DEADLINE_EXCEEDED, deadline_reason(60))
    assert any(isinstance(a, Event) and a.reason == DEADLINE_EXCEEDED for a in late)
    [patch] = [a for a in late if isinstance(a, PatchStatus)]
    assert patch.status["stopRequestedAt"] == "2026-01-01T12:01:00Z"  # the grace starts


def test_stopping_for_the_deadline_deletes_pods_after_the_grace_then_fails() -> None:
    marked = replace(
        execution(BatchStatus.STOPPING),
        exit_code=DEADLINE_EXCEEDED,
        exit_description=deadline_reason(60),
    )
    status = {"jobExecutionId": 7, "stopRequestedAt": "2026-01-01T12:01:00Z"}
    job = ObservedJob("bx-1-load", "load", 7, active=1)
    later = NOW + dt.timedelta(seconds=200)
    actions = run(bx(status, deadlineSeconds=60, stopGracePeriodSeconds=30), RepositoryState(
        marked, LOADING), [job], now=later)  # fmt: skip
    assert [a.job_name for a in actions if isinstance(a, DeletePods)] == ["bx-1-load"]
    cond = conditions(actions)[DEADLINE_EXCEEDED]
    assert (cond["status"], cond["reason"]) == ("True", "DeadlineSeconds")
    stopped = (step("prepare", BatchStatus.COMPLETED), step("load", BatchStatus.STOPPED))
    [finish] = [
        a
        for a in run(bx(status, deadlineSeconds=60), RepositoryState(marked, stopped), now=later)
        if isinstance(a, FinishExecution)
    ]
    assert (finish.status, finish.exit_code) == (BatchStatus.FAILED, DEADLINE_EXCEEDED)
    assert finish.description.startswith("DeadlineExceeded: the execution ran past its deadline")


def test_a_step_timeout_fails_with_the_condition_until_a_restart() -> None:
    timed_out = replace(
        step("load", BatchStatus.FAILED),
        exit_code=DEADLINE_EXCEEDED,
        exit_description="DeadlineExceeded: step 'load' ran past its timeoutSeconds (5s)",
    )
    repo = RepositoryState(
        execution(BatchStatus.STARTED), (step("prepare", BatchStatus.COMPLETED), timed_out)
    )
    [finish] = [a for a in run(bx({"jobExecutionId": 7}), repo) if isinstance(a, FinishExecution)]
    assert (finish.status, finish.exit_code) == (BatchStatus.FAILED, DEADLINE_EXCEEDED)
    failed = replace(
        execution(BatchStatus.FAILED),
        exit_code=DEADLINE_EXCEEDED,
        exit_description=f"step 'load' failed: {timed_out.exit_description}",
    )
    mirrored = run(bx({"jobExecutionId": 7}), RepositoryState(failed, repo.steps))
    cond = conditions(mirrored)[DEADLINE_EXCEEDED]
    assert (cond["status"], cond["reason"]) == ("True", "TimeoutSeconds")
    assert "timeoutSeconds (5s)" in cond["message"]
    # the next attempt runs: the condition is gone
    found = {"jobExecutionId": 8, "conditions": [cond]}
    restarted = replace(execution(BatchStatus.STARTED, attempt=2), id=8)
    assert DEADLINE_EXCEEDED not in conditions(run(bx(found), RepositoryState(restarted)))


def test_step_jobs_carry_the_last_resort_active_deadline() -> None:
    repo = RepositoryState(execution(BatchStatus.STARTED))
    now = NOW + dt.timedelta(seconds=10)
    spec = {"deadlineSeconds": 60, "stopGracePeriodSeconds": 40}
    [create] = [a for a in run(bx({}, **spec), repo, now=now) if isinstance(a, CreateJob)]
    assert create.manifest["spec"]["activeDeadlineSeconds"] == 50 + 40 + HARD_STOP_MARGIN_SECONDS
    [plain] = [a for a in run(bx({}), repo, now=now) if isinstance(a, CreateJob)]
    assert "activeDeadlineSeconds" not in plain.manifest["spec"]
