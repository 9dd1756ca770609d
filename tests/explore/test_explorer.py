"""JobExplorer queries over a real repository (SQLite and PostgreSQL), and the caching
explorer: finished executions are cached forever, running ones for ``ttl`` seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from baton import (
    BatchJob,
    BatchStatus,
    CachingJobExplorer,
    JobExecution,
    JobExplorer,
    JobOperator,
    JobRepository,
    NoSuchExecution,
    UnknownJob,
    load_manifests,
)
from baton.repository.schema import JobExecutionRow
from conftest import JOBS
from sqlalchemy import event, update


@pytest.fixture
def numbers() -> BatchJob:
    (job,) = load_manifests(JOBS / "numbers.yaml")
    return job


@pytest.fixture
def op(repo: JobRepository) -> JobOperator:
    return JobOperator(repo, in_process=True)


@contextmanager
def statements(repo: JobRepository) -> Iterator[list[str]]:
    """The SQL statements sent through the repository's engine inside the block."""
    seen: list[str] = []

    def record(_c: object, _cur: object, stmt: str, *_: object) -> None:
        seen.append(stmt)

    event.listen(repo.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(repo.engine, "before_cursor_execute", record)


def set_status(repo: JobRepository, execution: JobExecution, status: BatchStatus) -> None:
    """Change an execution behind the explorer's back, as another process would (written
    directly: one of these moves, COMPLETED → ABANDONED, is outside the transition table)."""
    E = JobExecutionRow
    with repo.write() as conn:
        conn.execute(
            update(E).where(E.id == execution.id).values(status=status.value, version=E.version + 1)
        )


# ---------------------------------------------------------------- JobExplorer


def test_instances_and_executions_by_job(
    repo: JobRepository, op: JobOperator, numbers: BatchJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = op.start(numbers, {"count": 5})
    monkeypatch.setenv("BATON_TEST_FAIL_AT", "3")
    failed = op.start(numbers, {"count": 7})
    monkeypatch.delenv("BATON_TEST_FAIL_AT")
    restarted = op.restart(failed.id)
    other = BatchJob.model_validate({**numbers.dump(), "metadata": {"name": "other-numbers"}})
    elsewhere = op.start(other, {"count": 2})
    assert [e.status for e in (first, failed, restarted, elsewhere)] == [
        BatchStatus.COMPLETED,
        BatchStatus.FAILED,
        BatchStatus.COMPLETED,
        BatchStatus.COMPLETED,
    ]

    explorer = JobExplorer(repo)
    assert explorer.job_names() == ["numbers", "other-numbers"]
    instances = explorer.instances("numbers")
    assert [i.id for i in instances] == [failed.instance_id, first.instance_id]  # newest first
    assert all(i.job_name == "numbers" for i in instances)
    assert explorer.instance_count("numbers") == 2

    executions = explorer.executions("numbers")
    assert [e.id for e in executions] == [restarted.id, failed.id, first.id]
    assert explorer.execution_count("numbers") == 3
    assert [e.id for e in explorer.executions("numbers", limit=1)] == [restarted.id]
    by_instance = explorer.executions(instance_id=failed.instance_id)
    assert [(e.id, e.attempt) for e in by_instance] == [(restarted.id, 2), (failed.id, 1)]
    assert [e.id for e in explorer.executions()] == [
        elsewhere.id,
        restarted.id,
        failed.id,
        first.id,
    ]

    summaries = {s["job"]: s for s in explorer.job_summaries()}
    assert summaries["numbers"] == {
        "job": "numbers",
        "instances": 2,
        "executions": 3,
        "lastExecutionId": restarted.id,
        "lastStatus": "COMPLETED",
    }
    assert summaries["other-numbers"]["executions"] == 1


def test_running_executions(repo: JobRepository, op: JobOperator, numbers: BatchJob) -> None:
    done = op.start(numbers, {"count": 3})
    waiting = op.launch(numbers, {"count": 4})  # created, not run: STARTING
    running = op.launch(numbers, {"count": 5})
    set_status(repo, running, BatchStatus.STARTED)

    explorer = JobExplorer(repo)
    assert {e.id for e in explorer.running_executions()} == {waiting.id, running.id}
    assert [e.id for e in explorer.executions("numbers", running=True)] == [
        running.id,
        waiting.id,
    ]
    assert done.id not in {e.id for e in explorer.running_executions("numbers")}

    set_status(repo, explorer.execution(running.id), BatchStatus.STOPPING)
    assert {e.id for e in explorer.running_executions()} == {waiting.id, running.id}
    set_status(repo, explorer.execution(running.id), BatchStatus.STOPPED)
    assert [e.id for e in explorer.running_executions()] == [waiting.id]


def test_parameters_steps_and_summary(
    repo: JobRepository, op: JobOperator, numbers: BatchJob
) -> None:
    execution = op.start_next_instance(numbers, {"count": 12, "note": "hello"})
    explorer = JobExplorer(repo)
    assert explorer.execution(execution.id).parameters.as_json() == {
        "count": 12,
        "note": "hello",
        "run.id": 1,
    }
    params = explorer.execution(execution.id).parameters
    assert [p.name for p in params.identifying()] == ["count", "run.id"]

    steps = explorer.step_executions(execution.id)
    assert [s.step_name for s in steps] == ["prepare", "load", "check"]
    load = steps[1]
    assert (load.read_count, load.write_count, load.commit_count) == (12, 12, 2)
    assert explorer.step_execution(load.id) == load

    summary = explorer.summary(execution.id)
    assert summary["id"] == execution.id
    assert summary["job"] == "numbers"
    assert summary["status"] == "COMPLETED"
    assert summary["parameters"] == {"count": 12, "note": "hello", "run.id": 1}
    assert [s["name"] for s in summary["steps"]] == ["prepare", "load", "check"]
    assert summary["steps"][1]["readCount"] == 12


def test_skipped_items(
    repo: JobRepository, op: JobOperator, numbers: BatchJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_TEST_BAD", "4,9")
    execution = op.start(numbers, {"count": 15})
    assert execution.status is BatchStatus.COMPLETED
    skipped = JobExplorer(repo).skipped_items(execution.id)
    assert [(s.step_name, s.partition, s.phase, s.item) for s in skipped] == [
        ("load", None, "process", {"n": 4}),
        ("load", None, "process", {"n": 9}),
    ]
    assert skipped[0].error == "ValueError: bad item 4"
    clean = op.start(numbers, {"count": 2})
    assert JobExplorer(repo).skipped_items(clean.id) == []


def test_unknown_things_are_clear_errors(
    repo: JobRepository, op: JobOperator, numbers: BatchJob
) -> None:
    explorer = JobExplorer(repo)
    assert explorer.job_names() == []
    with pytest.raises(UnknownJob, match="no job named 'ghost'"):
        explorer.instances("ghost")
    with pytest.raises(UnknownJob, match="no job named 'ghost'"):
        explorer.executions("ghost")
    for query in (
        explorer.execution,
        explorer.step_executions,
        explorer.skipped_items,
        explorer.summary,
    ):
        with pytest.raises(NoSuchExecution, match="no job execution with id 4242"):
            query(4242)
    op.start(numbers, {"count": 1})
    assert explorer.running_executions("numbers") == []


# ---------------------------------------------------------------- CachingJobExplorer


def test_a_finished_execution_is_cached_forever(
    repo: JobRepository, op: JobOperator, numbers: BatchJob
) -> None:
    done = op.start(numbers, {"count": 3})
    explorer = CachingJobExplorer(repo, ttl=0.05)
    assert explorer.execution(done.id).status is BatchStatus.COMPLETED
    steps = explorer.step_executions(done.id)

    set_status(repo, done, BatchStatus.ABANDONED)  # cannot happen to a COMPLETED one, but
    time.sleep(0.1)  # if it did, the cache would not look: well past ttl
    with statements(repo) as sent:
        assert explorer.execution(done.id).status is BatchStatus.COMPLETED
        assert explorer.step_executions(done.id) == steps
    assert sent == []  # answered from the cache

    explorer.invalidate()
    assert explorer.execution(done.id).status is BatchStatus.ABANDONED


def test_a_running_execution_refreshes_after_ttl(
    repo: JobRepository, op: JobOperator, numbers: BatchJob
) -> None:
    running = op.launch(numbers, {"count": 3})
    explorer = CachingJobExplorer(repo, ttl=0.3)
    assert explorer.execution(running.id).status is BatchStatus.STARTING
    listing = explorer.executions("numbers", running=True)
    assert [e.id for e in listing] == [running.id]

    set_status(repo, running, BatchStatus.STARTED)
    with statements(repo) as sent:  # within ttl: the cached answer, no query
        assert explorer.execution(running.id).status is BatchStatus.STARTING
        assert explorer.executions("numbers", running=True) == listing
    assert sent == []

    time.sleep(0.35)
    with statements(repo) as sent:
        assert explorer.execution(running.id).status is BatchStatus.STARTED
    assert sent  # it went to the database

    set_status(repo, explorer.execution(running.id), BatchStatus.FAILED)
    time.sleep(0.35)
    assert explorer.execution(running.id).status is BatchStatus.FAILED
    assert explorer.executions("numbers", running=True) == []
    # Now terminal: cached for good.
    set_status(repo, explorer.execution(running.id), BatchStatus.ABANDONED)
    time.sleep(0.35)
    assert explorer.execution(running.id).status is BatchStatus.FAILED


def test_invalidate_drops_every_cached_answer(
    repo: JobRepository, op: JobOperator, numbers: BatchJob
) -> None:
    explorer = CachingJobExplorer(repo, ttl=3600)
    assert explorer.job_names() == []
    assert explorer.executions() == []
    execution = op.start(numbers, {"count": 2})
    assert explorer.job_names() == []  # still the cached answer
    assert explorer.executions() == []
    explorer.invalidate()
    assert explorer.job_names() == ["numbers"]
    assert [e.id for e in explorer.executions()] == [execution.id]


def test_cached_answers_are_per_query(
    repo: JobRepository, op: JobOperator, numbers: BatchJob
) -> None:
    a = op.start(numbers, {"count": 2})
    b = op.start(numbers, {"count": 3})
    explorer = CachingJobExplorer(repo, ttl=3600)
    assert explorer.execution(a.id).id == a.id
    assert explorer.execution(b.id).id == b.id
    assert [e.id for e in explorer.executions("numbers", limit=1)] == [b.id]
    assert [e.id for e in explorer.executions("numbers")] == [b.id, a.id]
    # The uncached queries still work through the caching explorer.
    assert explorer.execution(a.id).parameters.as_json() == {"count": 2, "note": "-"}
    assert explorer.summary(b.id)["status"] == "COMPLETED"
