"""The chunk loop, checkpoints and restarts, in-process on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import baton
import pytest
from baton import BatchStatus, JobOperator, JobRegistry, JobRepository
from baton.core.errors import (
    DatabaseUnavailable,
    InvalidParameters,
    JobExecutionAlreadyRunning,
    JobInstanceAlreadyComplete,
    JobRestartRejected,
    UnexpectedJobExecutionState,
)
from baton.registry.jobs import RegisteredJob
from baton.spec.model import BatchJob, JobSpec, ObjectMeta
from conftest import JOBS
from sqlalchemy import text
from sqlalchemy.exc import OperationalError


@pytest.fixture
def numbers() -> RegisteredJob:
    return JobRegistry().load(str(JOBS / "numbers.yaml")).get("numbers")


PROCESSORS = ["testjobs:process", "testjobs:ChunkProcess"]
"""An item processor and the same as a chunk processor: the same counts, skips, rows."""


@pytest.fixture(params=PROCESSORS)
def numbers_by(request: pytest.FixtureRequest, tmp_path: Path) -> RegisteredJob:
    """The numbers job with each kind of processor."""
    text = (JOBS / "numbers.yaml").read_text()
    path = tmp_path / "numbers.yaml"
    path.write_text(text.replace("processor: testjobs:process", f"processor: {request.param}"))
    return JobRegistry().load(str(path)).get("numbers")


@pytest.fixture
def op(repo: JobRepository) -> JobOperator:
    return JobOperator(
        repo,
        in_process=True,
    )


def rows(repo: JobRepository) -> list[int]:
    with repo.engine.connect() as c:
        return [r[0] for r in c.execute(text("SELECT n FROM out ORDER BY n"))]


def steps(repo: JobRepository, execution_id: int) -> dict[str, baton.StepExecution]:
    return {s.step_name: s for s in repo.step_executions(execution_id)}


def test_completes_with_counts_and_chain_context(
    op: JobOperator, repo: JobRepository, numbers: RegisteredJob
) -> None:
    e = op.start(numbers, {"count": "100"})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    s = steps(repo, e.id)
    load = s["load"]
    assert (load.read_count, load.write_count, load.commit_count) == (100, 100, 10)
    assert (load.filter_count, load.skip_count, load.rollback_count) == (0, 0, 0)
    assert load.total_count == 100
    assert rows(repo) == list(range(1, 101))
    assert s["prepare"].result == {"count": 100}
    assert s["check"].result == "ok"
    assert repo.get_execution(e.id).context == {"prepared": True, "count": 100, "checked": 1}
    assert load.peak_memory_kb and load.peak_memory_kb > 0


def test_failure_in_chunk_6_restarts_with_only_the_remaining_items(
    op: JobOperator,
    repo: JobRepository,
    numbers_by: RegisteredJob,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "reads.log"
    monkeypatch.setenv("BATON_TEST_READS_LOG", str(log))
    monkeypatch.setenv("BATON_TEST_FAIL_AT", "55")  # chunk 6 of 10
    first = op.start(numbers_by, {"count": "100"})
    assert first.status is BatchStatus.FAILED
    assert "injected failure at item 55" in first.exit_description
    failed = steps(repo, first.id)["load"]
    assert failed.status is BatchStatus.FAILED
    assert (failed.read_count, failed.commit_count) == (50, 5)
    assert "RuntimeError: injected failure at item 55" in failed.exit_description
    assert rows(repo) == list(range(1, 51))

    monkeypatch.delenv("BATON_TEST_FAIL_AT")
    second = op.restart(first.id)
    assert second.status is BatchStatus.COMPLETED
    assert second.instance_id == first.instance_id and second.attempt == 2
    resumed = steps(repo, second.id)
    assert "prepare" not in resumed  # completed before: skipped on restart
    assert resumed["load"].read_count == 50  # only the remaining items
    assert resumed["load"].commit_count == 5
    assert log.read_text().split("\n")[:2] == ["open 0", "open 50"]
    assert rows(repo) == list(range(1, 101))  # every row exactly once
    assert repo.get_execution(second.id).context["checked"] == 1


def test_skips_are_counted_and_recorded(
    op: JobOperator,
    repo: JobRepository,
    numbers_by: RegisteredJob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunk processor failing on one item skips exactly that item: its chunk is
    processed again item by item, the other items are written once."""
    monkeypatch.setenv("BATON_TEST_BAD", "3,44")
    monkeypatch.setenv("BATON_TEST_READ_FAIL_AT", "70")
    monkeypatch.setenv("BATON_TEST_FILTER_EVERY", "25")
    e = op.start(numbers_by, {"count": "100"})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    load = steps(repo, e.id)["load"]
    assert load.process_skip_count == 2 and load.read_skip_count == 1
    assert load.filter_count == 4
    assert load.read_count == 99  # record 70 could not be read
    assert load.write_count == 99 - 2 - 4
    skipped = op.explorer.skipped_items(e.id)
    assert [(s.phase, s.item) for s in skipped] == [
        ("process", {"n": 3}),
        ("process", {"n": 44}),
        ("read", None),
    ]
    assert skipped[0].error == "ValueError: bad item 3"
    assert skipped[2].error == "ValueError: unreadable record 70"
    assert 3 not in rows(repo) and 70 not in rows(repo) and 25 not in rows(repo)


def test_skip_limit_exceeded_fails_the_step(
    op: JobOperator, repo: JobRepository, numbers: RegisteredJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_TEST_BAD", "1,2,3,4")
    e = op.start(numbers, {"count": "30"})
    assert e.status is BatchStatus.FAILED
    assert "skip limit 3 exceeded" in e.exit_description
    assert steps(repo, e.id)["load"].exit_code == "FAILED"
    assert rows(repo) == []  # the chunk with the 4th skip never committed


def _job(name: str, *step_specs: Any, **spec: Any) -> BatchJob:
    return BatchJob(metadata=ObjectMeta(name=name), spec=JobSpec(steps=list(step_specs), **spec))


@pytest.mark.parametrize("kind", ["item", "chunk"])
def test_retry_then_succeed(op: JobOperator, repo: JobRepository, kind: str) -> None:
    """A transient error is retried: an item processor's on its item, a chunk
    processor's on the item that raised it once its chunk goes item by item."""
    import testjobs
    from testjobs import NumbersReader, OutWriter, Transient

    testjobs._flaky_seen.clear()
    job = _job(
        "flaky",
        baton.chunk(
            "load",
            reader=NumbersReader,
            processor=testjobs.flaky if kind == "item" else testjobs.ChunkFlaky,
            writer=OutWriter,
            size=7,
            retry=[Transient],
            retry_limit=2,
        ),
        parameters=[baton.param("count", "int")],
    )
    e = op.start(job, {"count": 20})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    assert rows(repo) == list(range(1, 21))
    assert testjobs._flaky_seen == {5: 2, 10: 2, 15: 2, 20: 2}  # no retry budget left over


def test_write_errors_are_scanned_and_only_bad_items_skipped(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testjobs import NumbersReader, PickyWriter

    monkeypatch.setenv("BATON_TEST_WRITE_BAD", "15")
    job = _job(
        "picky",
        baton.chunk(
            "load",
            reader=NumbersReader,
            writer=PickyWriter,
            size=10,
            skip=[ValueError],
            skip_limit=1,
        ),
        parameters=[baton.param("count", "int")],
    )
    e = op.start(job, {"count": 30})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    load = steps(repo, e.id)["load"]
    assert (load.write_count, load.write_skip_count, load.commit_count) == (29, 1, 3)
    assert load.rollback_count == 1
    assert rows(repo) == [n for n in range(1, 31) if n != 15]
    [skip] = op.explorer.skipped_items(e.id)
    assert (skip.phase, skip.item, skip.error) == (
        "write",
        {
            "n": 15,
        },
        "ValueError: cannot write 15",
    )


def test_restart_table_through_the_operator(
    op: JobOperator, numbers: RegisteredJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = op.start(numbers, {"count": "10"})
    assert done.status is BatchStatus.COMPLETED
    with pytest.raises(JobInstanceAlreadyComplete, match="JobInstanceAlreadyComplete"):
        op.start(numbers, {"count": "10"})
    with pytest.raises(JobInstanceAlreadyComplete):
        op.restart(done.id)
    # a different non-identifying value is the same instance
    with pytest.raises(JobInstanceAlreadyComplete):
        op.start(numbers, {"count": "10", "note": "again"})

    monkeypatch.setenv("BATON_TEST_TASKLET_FAIL", "1")
    failed = op.start(numbers, {"count": "11"})
    assert failed.status is BatchStatus.FAILED
    with pytest.raises(UnexpectedJobExecutionState, match=r"cannot stop execution .* FAILED"):
        op.stop(failed.id)
    abandoned = op.abandon(failed.id)
    assert abandoned.status is BatchStatus.ABANDONED
    with pytest.raises(JobRestartRejected, match="abandoned"):
        op.restart(failed.id)
    with pytest.raises(UnexpectedJobExecutionState, match="cannot abandon"):
        op.abandon(done.id)


def test_failed_tasklet_restart_skips_completed_steps(
    op: JobOperator,
    repo: JobRepository,
    numbers: RegisteredJob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATON_TEST_TASKLET_FAIL", "1")
    first = op.start(numbers, {"count": "20"})
    assert first.status is BatchStatus.FAILED
    assert "tasklet failure" in first.exit_description
    monkeypatch.delenv("BATON_TEST_TASKLET_FAIL")
    second = op.restart(first.id)
    assert second.status is BatchStatus.COMPLETED
    assert set(steps(repo, second.id)) == {"check"}
    assert rows(repo) == list(range(1, 21))


def test_allow_start_if_complete_reruns(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job(
        "again",
        baton.tasklet("prepare", "testjobs:prepare", allow_start_if_complete=True),
        baton.tasklet("check", "testjobs:check_context"),
        parameters=[baton.param("count", "int")],
    )
    monkeypatch.setenv("BATON_TEST_TASKLET_FAIL", "1")
    first = op.start(job, {"count": 1})
    monkeypatch.delenv("BATON_TEST_TASKLET_FAIL")
    second = op.restart(first.id)
    assert second.status is BatchStatus.COMPLETED
    assert set(steps(repo, second.id)) == {"prepare", "check"}


def test_prevent_restart(op: JobOperator, monkeypatch: pytest.MonkeyPatch) -> None:
    job = _job("once", baton.tasklet("boom", "testjobs:boom"), prevent_restart=True)
    first = op.start(job)
    assert first.status is BatchStatus.FAILED
    assert "boom: the tasklet raised" in first.exit_description
    with pytest.raises(JobRestartRejected, match="preventRestart"):
        op.restart(first.id)


def test_start_next_instance_increments_run_id(op: JobOperator, numbers: RegisteredJob) -> None:
    a = op.start_next_instance(numbers, {"count": "5"})
    b = op.start_next_instance(numbers, {"count": "5"})
    assert a.parameters["run.id"].value == 1 and b.parameters["run.id"].value == 2
    assert a.instance_id != b.instance_id
    assert {a.status, b.status} == {BatchStatus.COMPLETED}
    with pytest.raises(InvalidParameters, match="no incrementer"):
        op.start_next_instance(_job("plain", baton.tasklet("t", "testjobs:boom")))


def test_stop_finishes_the_chunk_and_restart_completes(
    op: JobOperator,
    repo: JobRepository,
    numbers: RegisteredJob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATON_TEST_SLEEP", "0.01")
    launched: list[baton.JobExecution] = []
    result: list[baton.JobExecution] = []
    t = threading.Thread(
        target=lambda: result.append(
            op.start(numbers, {"count": "300"}, on_launched=launched.append)
        )
    )
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if launched and any(s.commit_count >= 2 for s in repo.step_executions(launched[0].id)):
            break
        time.sleep(0.02)
    stopping = op.stop(launched[0].id)
    assert stopping.status is BatchStatus.STOPPING
    t.join(60)
    [stopped] = result
    assert stopped.status is BatchStatus.STOPPED
    load = steps(repo, stopped.id)["load"]
    assert load.status is BatchStatus.STOPPED and 0 < load.write_count < 300
    assert load.write_count % 10 == 0  # stopped at a chunk boundary
    assert rows(repo) == list(range(1, load.write_count + 1))
    monkeypatch.delenv("BATON_TEST_SLEEP")
    done = op.restart(stopped.id)
    assert done.status is BatchStatus.COMPLETED
    assert rows(repo) == list(range(1, 301))


def test_recovery_of_a_dead_process(
    op: JobOperator, repo: JobRepository, numbers: RegisteredJob
) -> None:
    e = op.launch(numbers, {"count": "5"})
    import socket

    dead_owner = f"{socket.gethostname()}:999999999:1"
    repo.transition(
        e.id,
        BatchStatus.STARTED,
        action="start",
        start=True,
        owner=dead_owner,
    )
    # a launch of the same instance recovers it (its process is gone) and restarts
    again = op.start(numbers, {"count": "5"})
    assert again.status is BatchStatus.COMPLETED
    old = repo.get_execution(e.id)
    assert old.status is BatchStatus.FAILED and "recovered" in old.exit_description

    other = op.launch(numbers, {"count": "6"})
    repo.transition(
        other.id,
        BatchStatus.STARTED,
        action="start",
        start=True,
        owner="elsewhere:1:1",
    )
    with pytest.raises(JobExecutionAlreadyRunning, match="--force"):
        op.recover(other.id)
    with pytest.raises(JobExecutionAlreadyRunning):
        op.start(numbers, {"count": "6"})
    assert op.recover(other.id, force=True).status is BatchStatus.FAILED
    assert op.restart(other.id).status is BatchStatus.COMPLETED


class OutageAtOpen:
    """A writer whose first open() meets the server going away (PostgreSQL's
    AdminShutdown, as a restart sends it), like a SQL writer reading its table."""

    opens = 0

    def __init__(self, params: Any):
        self.items: list[Any] = []

    def open(self, context: Any) -> None:
        type(self).opens += 1
        if type(self).opens == 1:
            reason = Exception("terminating connection due to administrator command")
            raise OperationalError("SELECT 1", {}, reason)

    def write(self, items: list[Any]) -> None:
        self.items.extend(items)


def test_a_database_restart_while_streams_open_is_ridden_out(op: JobOperator) -> None:
    from testjobs import NumbersReader

    OutageAtOpen.opens = 0
    job = _job(
        "outage",
        baton.chunk("load", reader=NumbersReader, writer=OutageAtOpen, size=5),
        parameters=[baton.param("count", "int")],
    )
    e = op.start(job, {"count": 12})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    assert OutageAtOpen.opens == 2


def test_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(
        DatabaseUnavailable,
        match=r"cannot reach database postgresql\+psycopg://"
        r"baton:\*\*\*@127.0.0.1:1/nowhere",
    ):
        JobRepository("postgresql://baton:secret@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseUnavailable, match="unable to open"):
        JobRepository("sqlite:////nonexistent-dir/x/baton.db")


def test_database_errors_from_bulk_writes_are_skippable(
    op: JobOperator, repo: JobRepository
) -> None:
    """On PostgreSQL the SQL writer loads with COPY; its errors are the same SQLAlchemy
    exceptions an INSERT raises, so skip/retry rules and the item scan still apply."""
    from testjobs import KeyedWriter, NumbersReader, repeat_seven

    job = _job(
        "keyed",
        baton.chunk(
            "load",
            reader=NumbersReader,
            processor=repeat_seven,
            writer=KeyedWriter,
            size=5,
            skip=["sqlalchemy.exc:IntegrityError"],
            skip_limit=1,
        ),
        parameters=[baton.param("count", "int")],
    )
    e = op.start(job, {"count": 12})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    load = steps(repo, e.id)["load"]
    assert (load.write_count, load.write_skip_count, load.rollback_count) == (11, 1, 1)
    [skip] = op.explorer.skipped_items(e.id)
    assert skip.item == {"n": 7, "tag": "t8"} and "IntegrityError" in skip.error
    with repo.engine.connect() as c:
        assert [r[0] for r in c.execute(text("SELECT n FROM keyed ORDER BY n"))] == [
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            9,
            10,
            11,
            12,
        ]
