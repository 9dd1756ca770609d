"""File readers and writers under skip, retry, fencing and crashes: every record once.

Readers go on after a skipped record and never end early; file writers stage a chunk
and append it only inside the checkpoint transaction after its fence check, so a
retried, skip-scanned or fenced chunk is never in the file twice (or at all). Real
files, real SQLite and PostgreSQL, real processes and signals; nothing is mocked."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import baton
import pytest
from baton import BatchJob, BatchStatus, ExitCode, JobOperator, JobRepository
from baton.core.errors import InvalidDefinition
from baton.items import CsvReader, JsonLinesReader, JsonLinesWriter
from baton.step.chunk import ChunkStep
from baton.step.context import StepContext
from baton.step.reading import counts_after, process_chunk
from conftest import JOBS, ROOT
from conftest import baton as baton_cli
from sqlalchemy import text

RUNTIME = Path(baton.__file__).resolve().parents[1]  # the code under test, in subprocesses too


def filejobs() -> Any:
    """tests/jobs/filejobs.py (importable once the autouse fixture put tests/jobs on the path)."""
    import filejobs as module

    return module


def subprocess_env(db: str, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(JOBS), str(RUNTIME), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, BATON_DB_URL=db, PYTHONPATH=path, **extra)


def cli(*args: str, db: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return baton_cli(
        *args, db=db, timeout=timeout, env={"PYTHONPATH": subprocess_env(db)["PYTHONPATH"]}
    )


def chunk_job(name: str, reader: str, writer: str, **chunk: Any) -> BatchJob:
    return BatchJob.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "steps": [{"name": "load", "chunk": {"reader": reader, "writer": writer, **chunk}}]
            },
        }
    )


def numbers_file(path: Path, count: int, bad: dict[int, str] | None = None) -> Path:
    lines = [json.dumps({"n": i}) for i in range(1, count + 1)]
    for lineno, line in (bad or {}).items():
        lines[lineno - 1] = line
    path.write_text("\n".join(lines) + "\n")
    return path


def ns(path: Path) -> list[int]:
    """The ``n`` of every line (each line must be valid JSON: a broken line fails)."""
    return [json.loads(line)["n"] for line in path.read_text().splitlines()]


def only_step(repo: JobRepository, execution_id: int) -> baton.StepExecution:
    (step,) = repo.step_executions(execution_id)
    return step


# ---------------------------------------------------------------- readers


def test_jsonl_reader_goes_on_after_a_skipped_line(repo: JobRepository, tmp_path: Path) -> None:
    src = numbers_file(tmp_path / "in.jsonl", 1000, {350: "{bad json"})
    out = tmp_path / "out.jsonl"
    job = chunk_job(
        "skip-jsonl",
        "baton.items:JsonLinesReader",
        "baton.items:JsonLinesWriter",
        readerArgs={"path": str(src)},
        writerArgs={"path": str(out)},
        size=50,
        skip=["ValueError"],
        skipLimit=10,
    )
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    step = only_step(repo, e.id)
    assert (step.read_count, step.read_skip_count, step.write_count) == (999, 1, 999)
    assert ns(out) == [i for i in range(1, 1001) if i != 350]
    (skipped,) = repo.skipped_items(e.id)
    assert "in.jsonl:350: invalid JSON" in skipped.error


def test_the_read_cursor_counts_a_skipped_record(tmp_path: Path) -> None:
    """A restart after the bad record neither reads it again nor loses the next one."""
    src = numbers_file(tmp_path / "in.jsonl", 10, {4: "{bad json"})
    ctx: dict[str, Any] = {}
    r = JsonLinesReader(src)
    r.open(ctx)
    assert [r.read() for _ in range(3)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    with pytest.raises(ValueError, match=r"in\.jsonl:4: invalid JSON"):
        r.read()
    r.update(ctx)
    r.close()
    assert ctx["jsonl.read.count"] == 4
    again = JsonLinesReader(src)
    again.open(ctx)
    assert again.read() == {"n": 5}
    again.close()


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    """200 rows; row 50 has a field over csv.field_size_limit(), row 120 bad quoting,
    row 150 bytes that are not UTF-8."""
    path = tmp_path / "in.csv"
    with path.open("wb") as f:
        f.write(b"id,name\n")
        for i in range(1, 201):
            if i == 50:
                f.write(f'{i},"{"x" * (csv.field_size_limit() + 10)}"\n'.encode())
            elif i == 120:
                f.write(f'{i},"quoted"garbage\n'.encode())
            elif i == 150:
                f.write(f"{i},caf".encode() + b"\xe9\n")
            else:
                f.write(f"{i},name {i}\n".encode())
    return path


def test_csv_reader_goes_on_after_malformed_rows(repo: JobRepository, bad_csv: Path) -> None:
    out = bad_csv.with_name("out.jsonl")
    job = chunk_job(
        "skip-csv",
        "baton.items:CsvReader",
        "baton.items:JsonLinesWriter",
        readerArgs={"path": str(bad_csv), "strict": True},
        writerArgs={"path": str(out)},
        size=25,
        skip=["ValueError"],
        skipLimit=10,
    )
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    step = only_step(repo, e.id)
    assert (step.read_count, step.read_skip_count, step.write_count) == (197, 3, 197)
    ids = [int(json.loads(line)["id"]) for line in out.read_text().splitlines()]
    assert ids == [i for i in range(1, 201) if i not in (50, 120, 150)]
    errors = [s.error for s in repo.skipped_items(e.id)]
    assert "field larger than field limit" in errors[0]
    assert "in.csv:" in errors[1] and "not utf-8" in errors[2]


def test_csv_restart_after_a_malformed_row_resumes_after_it(bad_csv: Path) -> None:
    ctx: dict[str, Any] = {}
    r = CsvReader(bad_csv, strict=True)
    r.open(ctx)
    assert [r.read()["id"] for _ in range(49)][-1] == "49"
    with pytest.raises(ValueError, match="field larger than field limit"):
        r.read()
    r.update(ctx)
    r.close()
    again = CsvReader(bad_csv, strict=True)
    again.open(ctx)
    assert again.read() == {"id": "51", "name": "name 51"}
    again.close()


def test_an_io_error_mid_file_fails_the_step_instead_of_ending_it(
    repo: JobRepository, tmp_path: Path
) -> None:
    """Even with OSError and ValueError skippable, a reader that lost its file never
    reports the end of the input (nor a torn line as a bad record): the step fails, as
    an I/O error is no record's fault; it does not complete with what it had read."""
    src = numbers_file(tmp_path / "in.jsonl", 2000)
    job = chunk_job(
        "io-error",
        "filejobs:LosesItsFileReader",
        "baton.items:ListWriter",
        readerArgs={"path": str(src)},
        size=50,
        skip=["OSError", "ValueError"],
        skipLimit=3,
    )
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.FAILED
    step = only_step(repo, e.id)
    assert step.status is BatchStatus.FAILED
    first = step.exit_description.splitlines()[0]
    assert first.startswith("BatonError: cannot read ") and "Bad file descriptor" in first
    assert step.read_count < 2000


def test_a_reader_whose_close_fails_fails_the_step(repo: JobRepository) -> None:
    job = chunk_job("close-fails", "filejobs:CloseFailsReader", "baton.items:ListWriter", size=10)
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.FAILED
    step = only_step(repo, e.id)
    assert step.exit_description.splitlines()[0] == (
        "BatonError: closing CloseFailsReader failed: "
        "OSError: close failed: the input's lease could not be released"
    )
    assert step.read_count == 30  # the data was committed; only the close failed


# ---------------------------------------------------------------- writers


def test_a_retried_chunk_is_in_the_file_once(
    repo: JobRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filejobs().FailOnceJsonLinesWriter, "fail_at", 555)
    monkeypatch.setattr(filejobs(), "_failed", set())
    src = numbers_file(tmp_path / "in.jsonl", 1000)
    out = tmp_path / "out.jsonl"
    job = chunk_job(
        "retry-file",
        "baton.items:JsonLinesReader",
        "filejobs:FailOnceJsonLinesWriter",
        readerArgs={"path": str(src)},
        writerArgs={"path": str(out)},
        size=100,
        retry=["filejobs:Transient"],
        retryLimit=2,
    )
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    assert ns(out) == list(range(1, 1001))
    step = only_step(repo, e.id)
    assert (step.write_count, step.rollback_count) == (1000, 1)


def test_a_skip_scanned_chunk_is_in_the_file_once_without_the_bad_item(
    repo: JobRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filejobs().PickyJsonLinesWriter, "bad", frozenset({555}))
    src = numbers_file(tmp_path / "in.jsonl", 1000)
    out = tmp_path / "out.jsonl"
    job = chunk_job(
        "scan-file",
        "baton.items:JsonLinesReader",
        "filejobs:PickyJsonLinesWriter",
        readerArgs={"path": str(src)},
        writerArgs={"path": str(out)},
        size=100,
        skip=["ValueError"],
        skipLimit=5,
    )
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    assert ns(out) == [i for i in range(1, 1001) if i != 555]
    step = only_step(repo, e.id)
    assert (step.write_count, step.write_skip_count) == (999, 1)


def test_a_composite_writer_rolls_every_delegate_back(
    repo: JobRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSON-lines file, a CSV file and the SQL writer's table under one composite: a
    skip-scanned chunk leaves each of them with every good item exactly once."""
    monkeypatch.setattr(filejobs().PickyJsonLinesWriter, "bad", frozenset({555}))
    src = numbers_file(tmp_path / "in.jsonl", 1000)
    jsonl, table_csv = tmp_path / "out.jsonl", tmp_path / "out.csv"
    writers = [
        {"writer": "filejobs:PickyJsonLinesWriter", "args": {"path": str(jsonl)}},
        {"writer": "baton.items:CsvWriter", "args": {"path": str(table_csv), "fields": ["n"]}},
        {"writer": "testjobs:OutWriter"},
    ]
    job = chunk_job(
        "composite",
        "baton.items:JsonLinesReader",
        "baton.items:CompositeWriter",
        readerArgs={"path": str(src)},
        writerArgs={"writers": writers},
        size=100,
        skip=["ValueError"],
        skipLimit=5,
    )
    e = JobOperator(repo, in_process=True).start(job)
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    good = [i for i in range(1, 1001) if i != 555]
    assert ns(jsonl) == good
    assert table_csv.read_text().split() == ["n", *map(str, good)]
    with repo.engine.connect() as c:
        assert sorted(c.execute(text("SELECT n FROM out")).scalars()) == good


def test_a_composite_refuses_delegates_sharing_a_cursor(tmp_path: Path) -> None:
    from baton.items import CompositeWriter

    with pytest.raises(InvalidDefinition, match=r"jsonl\.written\.offset; give each a distinct"):
        CompositeWriter([JsonLinesWriter(tmp_path / "a"), JsonLinesWriter(tmp_path / "b")])


def test_the_jsonl_writer_refuses_values_json_cannot_carry(
    repo: JobRepository, tmp_path: Path
) -> None:
    src = numbers_file(tmp_path / "in.jsonl", 1000)
    out = tmp_path / "out.jsonl"
    spec: dict[str, Any] = {
        "processor": "filejobs:as_set",
        "readerArgs": {"path": str(src)},
        "writerArgs": {"path": str(out)},
        "size": 50,
    }
    op = JobOperator(repo, in_process=True)
    job = chunk_job("sets", "baton.items:JsonLinesReader", "baton.items:JsonLinesWriter", **spec)
    failed = op.start(job)
    assert failed.status is BatchStatus.FAILED
    step = only_step(repo, failed.id)
    assert step.exit_description.splitlines()[0] == (
        "TypeError: JsonLinesWriter: item 49 of the chunk: set is not JSON"
    )
    assert ns(out) == list(range(1, 51))  # the chunk before it, nothing of it

    out.unlink()
    skipping = chunk_job(
        "sets-skipped",
        "baton.items:JsonLinesReader",
        "baton.items:JsonLinesWriter",
        skip=["TypeError"],
        skipLimit=20,
        **spec,
    )
    done = op.start(skipping)
    assert done.status is BatchStatus.COMPLETED, done.exit_description
    assert ns(out) == [i for i in range(1, 1001) if i % 100]
    assert only_step(repo, done.id).write_skip_count == 10


def chunk_step(repo: JobRepository, job: BatchJob, **kwargs: Any) -> ChunkStep:
    """The job's chunk step, opened as a unit process opens it, to drive directly."""
    e = JobOperator(repo).launch(job)
    e = repo.transition(e.id, BatchStatus.STARTED, action="start")
    step = repo.open_step(e, "load", None, worker=None)
    spec = job.spec.steps[0].chunk
    assert spec is not None
    ctx = StepContext(
        job_name=job.name,
        execution_id=e.id,
        instance_id=e.instance_id,
        step_name="load",
        partition_index=None,
        params={},
        context={},
        step_context={},
        engine=repo.engine,
        source_dir=None,
    )
    return ChunkStep(repo, step, spec, ctx, **kwargs)


def test_an_unknown_commit_outcome_is_read_back_not_guessed(
    repo: JobRepository, tmp_path: Path
) -> None:
    """When a commit's outcome is lost with its connection, the chunk loop reads it back
    under the unit's row lock: a chunk whose commit landed is adopted (not written
    again), one whose commit did not is cut from the file and written again."""
    out = tmp_path / "out.jsonl"
    job = chunk_job(
        "unknown-outcome",
        "baton.items:IterableReader",
        "baton.items:JsonLinesWriter",
        size=10,
        readerArgs={"items": [{"n": i} for i in range(1, 31)]},
        writerArgs={"path": str(out)},
    )
    chunk = chunk_step(repo, job)
    for s in (chunk.reader, *chunk.writers.leaves):
        s.open(chunk.ctx.step_context)
    chunk.writers.find_bound(chunk.repo.engine)

    # Chunk 1 commits, but its process never hears so (the connection dropped).
    first = chunk._read_chunk()
    outputs = process_chunk(chunk.process, first, chunk.policy, chunk.counts.skip)
    chunk._commit(outputs, counts_after(chunk.counts, first, outputs, len(outputs)), first.skips)
    assert chunk._settle() is BatchStatus.STARTED  # landed: adopted as it is
    assert (chunk.counts.commit, chunk.ctx.chunk_number) == (1, 1)

    # Chunk 2 is appended after the fence check, but its transaction never commits.
    second = chunk._read_chunk()
    outputs = process_chunk(chunk.process, second, chunk.policy, chunk.counts.skip)
    with pytest.raises(RuntimeError), repo.write() as conn:
        for w in chunk.writers.unbound:
            w.write(outputs)
        chunk._update_streams(chunk.ctx.step_context)
        counts = counts_after(chunk.counts, second, outputs, 10)
        chunk.repo.checkpoint(conn, chunk.step, counts, {}, [])
        chunk.writers.flush_staged()
        raise RuntimeError("the connection dropped before COMMIT")
    assert ns(out) == list(range(1, 21))  # appended...
    assert chunk._settle() is None  # ...but not committed: cut back
    assert ns(out) == list(range(1, 11))
    chunk._write_chunk(outputs, second)  # written again, once

    third = chunk._read_chunk()
    chunk._write_chunk(process_chunk(chunk.process, third, chunk.policy, chunk.counts.skip), third)
    chunk.writer.close()
    assert ns(out) == list(range(1, 31))
    (step,) = repo.step_executions(chunk.step.execution_id)
    assert (step.commit_count, step.write_count) == (3, 30)
    assert step.context["jsonl.written.offset"] == out.stat().st_size


def test_the_chunk_duration_window_is_bounded(repo: JobRepository) -> None:
    job = chunk_job(
        "window",
        "baton.items:IterableReader",
        "baton.items:ListWriter",
        size=1,
        readerArgs={"items": list(range(300))},
    )
    chunk = chunk_step(repo, job, max_duration=3600)
    outcome = chunk.run()
    assert (outcome.status, outcome.counts.commit) == (BatchStatus.COMPLETED, 300)
    from baton.step.chunk import DURATION_WINDOW

    assert len(chunk.durations) == chunk.durations.maxlen == DURATION_WINDOW


# ---------------------------------------------------------------- processes


def manifest(tmp_path: Path, name: str, chunk: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    job = {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": name},
        "spec": {"steps": [{"name": "load", "chunk": chunk}]},
    }
    path.write_text(json.dumps(job))
    return path


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}): {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear in {timeout}s")
        time.sleep(0.02)


@pytest.mark.slow
def test_a_fenced_zombie_writes_nothing_to_the_file(db_url: str, tmp_path: Path) -> None:
    """A step process paused (SIGSTOP) on "another host", recovered with --force and
    restarted to completion, then resumed (SIGCONT): its checkpoint is fenced before
    its chunk reaches the file, and it exits 8. The file has every record once, none
    from the zombie, no broken line."""
    src = numbers_file(tmp_path / "in.jsonl", 400)
    out = tmp_path / "out.jsonl"
    path = manifest(
        tmp_path,
        "zombie",
        {
            "reader": "baton.items:JsonLinesReader",
            "processor": "filejobs:stamp",
            "writer": "baton.items:JsonLinesWriter",
            "readerArgs": {"path": str(src)},
            "writerArgs": {"path": str(out)},
            "size": 10,
        },
    )
    repo = JobRepository(db_url)
    job = baton.JobRegistry().load(str(path)).get("zombie")
    launched = JobOperator(repo).launch(job)
    # Owned by a process on another host: only `recover --force` can end it.
    repo.transition(
        launched.id,
        BatchStatus.STARTED,
        action="start",
        start=True,
        owner="elsewhere:4242:1",
    )
    mark = tmp_path / "paused"
    zombie = subprocess.Popen(
        [sys.executable, "-m", "baton.step", str(launched.id), "load"],
        cwd=ROOT,
        env=subprocess_env(db_url, BATON_TEST_PAUSE_AT="155", BATON_TEST_PAUSE_MARK=str(mark)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(mark, zombie)
        zombie.send_signal(signal.SIGSTOP)
        recovered = cli("recover", str(launched.id), "--force", db=db_url)
        assert recovered.returncode == 0, recovered.stderr
        restarted = cli("restart", str(launched.id), "--no-progress", db=db_url)
        assert restarted.returncode == 0, restarted.stderr
        zombie.send_signal(signal.SIGCONT)
        _, stderr = zombie.communicate(timeout=60)
    finally:
        zombie.kill()
    assert zombie.returncode == ExitCode.FATAL, stderr
    assert "was ended by someone else" in stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["n"] for r in records) == list(range(1, 401))
    assert zombie.pid not in {r["pid"] for r in records[150:]}  # its chunk never landed
    repo.dispose()


@pytest.mark.slow
def test_a_slow_writer_does_not_hold_the_sqlite_write_lock(sqlite_url: str, tmp_path: Path) -> None:
    """While a writer sits in write() (user code), `baton stop` on the same SQLite
    repository gets through at once: the writer runs before the checkpoint's
    transaction, not inside it."""
    path = manifest(
        tmp_path,
        "slow",
        {
            "reader": "baton.items:IterableReader",
            "writer": "filejobs:GatedWriter",
            "readerArgs": {"items": list(range(100))},
            "size": 10,
        },
    )
    gate = {
        "BATON_TEST_GATE_MARK": str(tmp_path / "writing"),
        "BATON_TEST_GATE_OPEN": str(tmp_path / "open"),
        "BATON_TEST_GATE_DONE": str(tmp_path / "done"),
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", str(path), "--no-progress"],
        cwd=ROOT,
        env=subprocess_env(sqlite_url, **gate),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(tmp_path / "writing", run)
        stop = cli("stop", "1", db=sqlite_url, timeout=20)
        assert stop.returncode == 0, stop.stderr
        assert not (tmp_path / "done").exists()  # stop got through while write() ran
        (tmp_path / "open").touch()
        assert run.wait(60) == ExitCode.STOPPED
    finally:
        (tmp_path / "open").touch()
        run.kill()
        run.wait()
    repo = JobRepository(sqlite_url)
    assert repo.get_execution(1).status is BatchStatus.STOPPED
    assert only_step(repo, 1).write_count == 10  # the chunk in flight finished, then stop
    repo.dispose()


def numbers_csv(path: Path, count: int) -> Path:
    with path.open("w", newline="") as f:  # csv's own CRLF line ends
        csv.writer(f).writerows([["n", "note"], *([i, f"row {i}"] for i in range(1, count + 1))])
    return path


SOURCES = {  # format: (the reader, which logs the lines it read; the input; header lines)
    "jsonl": ("filejobs:LinesJsonLinesReader", numbers_file, 0),
    "csv": ("filejobs:LinesCsvReader", numbers_csv, 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(SOURCES))
def test_kill_9_then_restart_keeps_a_composite_of_file_and_table_exactly_once(
    db_url: str, tmp_path: Path, fmt: str
) -> None:
    """Every record once in the file and the table; and the restart seeked to its
    checkpointed offset: it read only the lines after it (and a CSV's header)."""
    reader, make, header = SOURCES[fmt]
    src = make(tmp_path / f"in.{fmt}", 1000)
    out = tmp_path / "out.jsonl"
    path = manifest(
        tmp_path,
        "killed",
        {
            "reader": reader,
            "processor": "filejobs:numbered",
            "writer": "baton.items:CompositeWriter",
            "readerArgs": {"path": str(src)},
            "writerArgs": {
                "writers": [
                    {"writer": "baton.items:JsonLinesWriter", "args": {"path": str(out)}},
                    {"writer": "testjobs:OutWriter"},
                ]
            },
            "size": 10,
        },
    )
    lines_log = tmp_path / "lines.log"
    env = subprocess_env(db_url, BATON_TEST_SLEEP="0.001", BATON_TEST_LINES_LOG=str(lines_log))
    run = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", str(path), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    repo = JobRepository(db_url)
    deadline = time.monotonic() + 60
    while not any(s.commit_count >= 5 for s in _steps(repo)):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(10)
    time.sleep(0.5)  # the step process dies with its parent (PDEATHSIG)
    restarted = baton_cli(
        "restart",
        "1",
        "--no-progress",
        db=db_url,
        env={"PYTHONPATH": env["PYTHONPATH"], "BATON_TEST_LINES_LOG": str(lines_log)},
    )
    assert restarted.returncode == 0, restarted.stderr
    assert ns(out) == list(range(1, 1001))
    with repo.engine.connect() as c:
        assert sorted(c.execute(text("SELECT n FROM out")).scalars()) == list(range(1, 1001))
    resumed_at, lines_read = map(int, lines_log.read_text().split()[-2:])
    assert resumed_at >= 50  # the restart resumed mid-file...
    assert lines_read == header + 1000 - resumed_at  # ...reading none of the rows before
    repo.dispose()


def _steps(repo: JobRepository) -> list[baton.StepExecution]:
    try:
        return repo.step_executions(1)
    except baton.BatonError:
        return []
