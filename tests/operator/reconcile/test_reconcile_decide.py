"""The pure reconciler, case by case: (specs, repository state, observed Jobs) → actions."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from baton.core.entities import JobExecution, StepExecution
from baton.core.status import BatchStatus
from baton.spec.model import BatchJob
from baton_operator.config import OperatorConfig
from baton_operator.k8s.cluster import ObservedJob
from baton_operator.k8s.resources import BatchExecution
from baton_operator.reconcile.actions import (
    AbandonExecution,
    CreateJob,
    DeletePods,
    FailUnits,
    FinishExecution,
    Launch,
    PatchStatus,
    PlanStepPartitions,
    RequestStop,
    StartExecution,
)
from baton_operator.reconcile.decide import reconcile
from baton_operator.reconcile.state import RepositoryState

ROOT = Path(__file__).resolve().parents[3]
JOB = BatchJob.model_validate(yaml.safe_load((ROOT / "examples/numbers/job.yaml").read_text()))
FANOUT = BatchJob.model_validate(
    yaml.safe_load((ROOT / "examples/numbers/partitioned.yaml").read_text())
)
NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
CFG = OperatorConfig(image="baton:test")


def bx(status: dict[str, Any] | None = None, **spec: Any) -> BatchExecution:
    return BatchExecution.model_validate(
        {
            "metadata": {"name": "bx"},
            "spec": {"job": "count-numbers", "parameters": {"count": 10}, **spec},
            "status": status,
        }
    )


def execution(status: BatchStatus, job: BatchJob = JOB, attempt: int = 1) -> JobExecution:
    return JobExecution(
        id=7, instance_id=3, job_name=job.name, version=1, attempt=attempt, status=status,
        exit_code="", exit_description="", created_at=NOW, start_time=NOW, end_time=None,
        last_updated=NOW, owner=None, source_dir=None, job_spec=job.dump(), context={},
    )  # fmt: skip


def step(
    name: str, status: BatchStatus, partition: int | None = None, **counts: int
) -> StepExecution:
    return StepExecution(
        id=hash((name, partition)) % 10_000, execution_id=7, step_name=name,
        partition=partition, version=1, status=status,
        read_count=counts.get("read", 0), write_count=counts.get("write", 0), filter_count=0,
        read_skip_count=0, process_skip_count=0, write_skip_count=0,
        commit_count=counts.get("commit", 0), rollback_count=0,
        total_count=counts.get("total"), start_time=NOW,
        end_time=None if status.running else NOW, last_updated=NOW, exit_code=status.value,
        exit_description="", context={}, result=None, worker=None, peak_memory_kb=None,
        incarnations=1,
    )  # fmt: skip


def run(
    e: BatchExecution,
    repo: RepositoryState,
    jobs: list[ObservedJob] | None = None,
    job: BatchJob | None = JOB,
    now: dt.datetime = NOW,
) -> list[Any]:
    return reconcile(job, e, repo, jobs or [], config=CFG, now=now, namespace="ns", uid="u")


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_a_new_execution_is_launched_with_its_raw_parameters() -> None:
    [launch] = run(bx(), RepositoryState())
    assert isinstance(launch, Launch)
    assert launch.raw_params == {"count": 10} and launch.reason == "Launched"
    assert launch.job_spec["metadata"]["name"] == "count-numbers"


def test_missing_batch_job_is_a_condition() -> None:
    [patch] = run(bx(), RepositoryState(), job=None)
    assert isinstance(patch, PatchStatus)
    assert patch.status["phase"] == "Pending"
    assert patch.status["conditions"][0]["reason"] == "BatchJobNotFound"


def test_rejected_stays_rejected_until_a_restart_bump() -> None:
    rejected = {"phase": "Rejected", "observedRestart": 0}
    assert run(bx(rejected), RepositoryState()) == []
    assert kinds(run(bx(rejected, restart=1), RepositoryState())) == ["Launch"]


def test_starting_is_started_then_the_first_step_runs() -> None:
    assert kinds(
        run(bx({"jobExecutionId": 7}), RepositoryState(execution(BatchStatus.STARTING)))
    ) == ["StartExecution"]
    actions = run(bx({"jobExecutionId": 7}), RepositoryState(execution(BatchStatus.STARTED)))
    create = next(a for a in actions if isinstance(a, CreateJob))
    assert create.name == "bx-1-prepare"
    assert isinstance(actions[-1], PatchStatus) and actions[-1].status["phase"] == "Running"


def test_an_existing_job_is_not_created_again() -> None:
    running = RepositoryState(execution(BatchStatus.STARTED))
    job = ObservedJob("bx-1-prepare", "prepare", 7, active=1)
    assert not any(isinstance(a, CreateJob) for a in run(bx({"jobExecutionId": 7}), running, [job]))


def test_a_running_step_whose_job_is_gone_is_failed() -> None:
    repo = RepositoryState(execution(BatchStatus.STARTED), (step("prepare", BatchStatus.STARTED),))
    actions = run(bx({"jobExecutionId": 7}), repo)
    fail = next(a for a in actions if isinstance(a, FailUnits))
    assert (fail.step, fail.status, fail.partitions) == ("prepare", BatchStatus.FAILED, (None,))
    assert "its Job is gone" in fail.description


def test_a_job_that_failed_before_the_step_opened_fails_the_step() -> None:
    repo = RepositoryState(execution(BatchStatus.STARTED))
    job = ObservedJob(
        "bx-1-prepare", "prepare", 7, failed_condition=True, failed_reason="BackoffLimitExceeded"
    )
    [fail] = [a for a in run(bx({"jobExecutionId": 7}), repo, [job]) if isinstance(a, FailUnits)]
    assert "BackoffLimitExceeded" in fail.description


def test_completed_steps_lead_to_finish() -> None:
    repo = RepositoryState(
        execution(BatchStatus.STARTED),
        tuple(step(n, BatchStatus.COMPLETED) for n in ("prepare", "load", "check")),
    )
    actions = run(bx({"jobExecutionId": 7}), repo)
    assert isinstance(actions[0], FinishExecution) and actions[0].status is BatchStatus.COMPLETED


def test_stop_marks_stopping_then_deletes_pods_after_the_grace_period() -> None:
    rows = (step("prepare", BatchStatus.COMPLETED), step("load", BatchStatus.STARTED))
    repo = RepositoryState(execution(BatchStatus.STARTED), rows)
    assert kinds(run(bx({"jobExecutionId": 7}, stop=True), repo))[:2] == ["RequestStop", "Event"]
    stopping = RepositoryState(execution(BatchStatus.STOPPING), repo.steps)
    job = ObservedJob("bx-1-load", "load", 7, active=1)
    status = {"jobExecutionId": 7, "stopRequestedAt": "2026-01-01T11:59:00Z"}
    within = run(bx(status, stop=True, stopGracePeriodSeconds=120), stopping, [job])
    assert not any(isinstance(a, DeletePods) for a in within)
    past = run(bx(status, stop=True, stopGracePeriodSeconds=30), stopping, [job])
    assert [a.job_name for a in past if isinstance(a, DeletePods)] == ["bx-1-load"]


def test_abandon_in_the_wrong_state_is_a_condition_not_a_crash() -> None:
    repo = RepositoryState(execution(BatchStatus.STARTED), (step("load", BatchStatus.STARTED),))
    actions = run(
        bx({"jobExecutionId": 7}, abandon=True),
        repo,
        [ObservedJob("bx-1-load", "load", 7, active=1)],
    )
    patch = next(a for a in actions if isinstance(a, PatchStatus))
    cond = next(c for c in patch.status["conditions"] if c["type"] == "Abandoned")
    assert cond["reason"] == "WrongState"
    stopped = RepositoryState(execution(BatchStatus.STOPPED))
    assert isinstance(run(bx({"jobExecutionId": 7}, abandon=True), stopped)[0], AbandonExecution)


def test_restart_bump_of_a_failed_execution_relaunches_its_snapshot() -> None:
    failed = RepositoryState(execution(BatchStatus.FAILED))
    [launch] = run(bx({"jobExecutionId": 7, "observedRestart": 0}, restart=1), failed)
    assert isinstance(launch, Launch) and launch.reason == "Restarted"
    assert launch.raw_params is None and launch.observed_restart == 1
    done = RepositoryState(execution(BatchStatus.COMPLETED))
    actions = run(bx({"jobExecutionId": 7, "observedRestart": 0}, restart=1), done)
    patch = next(a for a in actions if isinstance(a, PatchStatus))
    assert patch.status["observedRestart"] == 1
    assert any(
        c["type"] == "Restarted" and c["reason"] == "WrongState" for c in patch.status["conditions"]
    )


def test_disrupted_attempt_restarts_by_itself_within_its_budget() -> None:
    stopped = RepositoryState(execution(BatchStatus.STOPPED))
    status = {"jobExecutionId": 7, "disruptedAttempt": 1}
    auto = {"onDisruption": True, "maxRestarts": 1}
    [launch] = run(bx(status, autoRestart=auto), stopped)
    assert isinstance(launch, Launch) and launch.reason == "AutoRestarted"
    assert launch.auto_restarts == 1
    spent = run(bx({**status, "autoRestarts": 1}, autoRestart=auto), stopped)
    assert not any(isinstance(a, Launch) for a in spent)
    assert not any(isinstance(a, Launch) for a in run(bx(status), stopped))


def test_partitions_are_planned_then_run_as_one_indexed_job() -> None:
    e = execution(BatchStatus.STARTED, FANOUT)
    repo = RepositoryState(e, (step("prepare", BatchStatus.COMPLETED),))
    actions = run(bx({"jobExecutionId": 7}), repo, job=FANOUT)
    assert isinstance(actions[0], PlanStepPartitions) and actions[0].step == "load"
    planned = RepositoryState(e, repo.steps, partitions={"load": 8})
    create = next(
        a for a in run(bx({"jobExecutionId": 7}), planned, job=FANOUT) if isinstance(a, CreateJob)
    )
    spec = create.manifest["spec"]
    assert (spec["completions"], spec["parallelism"]) == (8, 8)


def test_a_restart_runs_only_unfinished_partitions() -> None:
    e = execution(BatchStatus.STARTED, FANOUT, attempt=2)
    previous = {("prepare", None): BatchStatus.COMPLETED}
    previous |= {("load", i): BatchStatus.COMPLETED for i in range(8) if i not in (2, 5)}
    previous |= {("load", 2): BatchStatus.FAILED, ("load", 5): BatchStatus.STOPPED}
    repo = RepositoryState(e, (), previous=previous, partitions={"load": 8})
    create = next(
        a for a in run(bx({"jobExecutionId": 7}), repo, job=FANOUT) if isinstance(a, CreateJob)
    )
    env = create.manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "BATON_PARTITIONS", "value": "2,5"} in env
    assert create.manifest["spec"]["completions"] == 2


def test_status_mirrors_counts_and_partitions() -> None:
    e = execution(BatchStatus.STARTED, FANOUT)
    rows = (
        step("prepare", BatchStatus.COMPLETED),
        *(step("load", BatchStatus.COMPLETED, i, read=50, write=50, total=50) for i in range(6)),
        *(step("load", BatchStatus.STARTED, i, read=10, write=10, total=50) for i in (6, 7)),
    )
    repo = RepositoryState(e, rows, partitions={"load": 8})
    job = ObservedJob("bx-1-load-pxxxxxx", "load", 7, partitions=tuple(range(8)), active=2)
    patch = next(
        a
        for a in run(bx({"jobExecutionId": 7}), repo, [job], job=FANOUT)
        if isinstance(a, PatchStatus)
    )
    st = patch.status
    load = next(s for s in st["steps"] if s["name"] == "load")
    assert (load["partitionsTotal"], load["partitionsDone"], load["writeCount"]) == (8, 6, 320)
    assert st["readCount"] == 320 and st["phase"] == "Running"
    assert st["progress"] == "60%"  # prepare 1, load 320/400 = 0.8, check 0 → 0.6


def test_no_op_reconcile_writes_nothing() -> None:
    repo = RepositoryState(execution(BatchStatus.STARTED), (step("prepare", BatchStatus.STARTED),))
    live = [ObservedJob("bx-1-prepare", "prepare", 7, active=1)]
    [patch] = [a for a in run(bx({"jobExecutionId": 7}), repo, live) if isinstance(a, PatchStatus)]
    again = run(bx(patch.status), repo, live)
    assert again == []


def test_concurrency_limits_go_to_admission() -> None:
    doc = JOB.dump()
    doc["spec"]["concurrency"] = {"maxRunning": 2, "cooldownSeconds": 5}
    limited = BatchJob.model_validate(doc)
    [start] = run(
        bx({"jobExecutionId": 7}),
        RepositoryState(execution(BatchStatus.STARTING, limited)),
        job=limited,
    )
    assert isinstance(start, StartExecution)
    assert (start.max_running, start.cooldown_seconds) == (2, 5.0)
    assert not isinstance(start, RequestStop)


def test_a_unit_whose_job_is_being_deleted_is_lost_as_gone() -> None:
    repo = RepositoryState(execution(BatchStatus.STARTED), (step("prepare", BatchStatus.STARTED),))
    deleting = ObservedJob(name="bx-1-prepare", step="prepare", execution_id=7, deleting=True)
    actions = run(bx({"jobExecutionId": 7}), repo, [deleting])
    fail = next(a for a in actions if isinstance(a, FailUnits))
    assert fail.description == "step 'prepare': its Job bx-1-prepare is gone (deleted)"


def test_a_partition_whose_pod_went_away_continues_in_its_job() -> None:
    """A pod deleted (or evicted) while the job runs: its partition checkpointed and
    exited 9 (STOPPED, exit code CONTINUE). The Indexed Job starts a new pod for it: the
    operator neither fails nor restarts anything, and shows the step running."""
    e = execution(BatchStatus.STARTED, FANOUT)
    gone = replace(
        step("load", BatchStatus.STOPPED, 2, read=100, total=1000),
        exit_code="CONTINUE",
        exit_description="pod terminated (signal); continuing in a new pod",
    )
    rows = (
        step("prepare", BatchStatus.COMPLETED),
        gone,
        *(step("load", BatchStatus.STARTED, i, read=200, total=1000) for i in (0, 1, 3, 4, 5)),
    )
    repo = RepositoryState(e, rows, partitions={"load": 6})
    job = ObservedJob("bx-1-load-pxxxxxx", "load", 7, partitions=tuple(range(6)), active=5)
    actions = run(bx({"jobExecutionId": 7}), repo, [job], job=FANOUT)
    assert kinds(actions) == ["PatchStatus"]
    st = actions[0].status
    load = next(s for s in st["steps"] if s["name"] == "load")
    assert (st["phase"], load["status"], load.get("exitDescription")) == (
        "Running",
        "STARTED",
        None,
    )
    assert st["progress"] == "39%"  # prepare 1, load 1100/6000, check 0


def test_progress_after_a_stop_counts_what_was_read() -> None:
    """A 6-partition step stopped with 0/6 partitions done and 1,400 of 6,000 items read
    (two partitions had not reported their totals): not 0%."""
    doc = FANOUT.dump()
    doc["spec"]["steps"] = [doc["spec"]["steps"][1]]
    doc["spec"]["steps"][0]["partitions"] = {"count": 6}
    single = BatchJob.model_validate(doc)
    e = execution(BatchStatus.STOPPED, single)
    rows = tuple(
        step(
            "load", BatchStatus.STOPPED, i, read=350 if i < 4 else 0, total=1000 if i < 4 else None
        )
        for i in range(6)
    )
    repo = RepositoryState(e, rows, partitions={"load": 6})
    [patch] = [
        a for a in run(bx({"jobExecutionId": 7}), repo, job=single) if isinstance(a, PatchStatus)
    ]
    st = patch.status
    assert (st["phase"], st["readCount"]) == ("Stopped", 1400)
    assert st["progress"] == "23%"
    load = st["steps"][0]
    assert (load["partitionsTotal"], load["partitionsDone"]) == (6, 0)


def test_progress_of_a_restart_counts_what_earlier_attempts_completed() -> None:
    e = execution(BatchStatus.STARTED, FANOUT, attempt=2)
    previous = {("prepare", None): BatchStatus.COMPLETED}
    previous |= {("load", i): BatchStatus.COMPLETED for i in range(6)}
    rows = tuple(step("load", BatchStatus.STARTED, i, read=25, total=50) for i in (6, 7))
    repo = RepositoryState(e, rows, previous=previous, partitions={"load": 8})
    job = ObservedJob("bx-2-load-pxxxxxx", "load", 7, partitions=(6, 7), active=2)
    [patch] = [
        a
        for a in run(bx({"jobExecutionId": 7}), repo, [job], job=FANOUT)
        if isinstance(a, PatchStatus)
    ]
    load = next(s for s in patch.status["steps"] if s["name"] == "load")
    assert (load["partitionsTotal"], load["partitionsDone"]) == (8, 6)
    assert patch.status["progress"] == "62%"  # prepare 1, load (6 + 0.5 + 0.5) / 8, check 0
