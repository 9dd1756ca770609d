"""Every SQL writer mode in a real chunk step (rule: every writer path is in the crash,
skip and retry tests): kill -9 then restart writes every row exactly once; a write
that fails on one bad row skips just that row; a transient failure after the rows
went in is retried without leaving them twice; and with its own ``url`` (not the
checkpoint transaction) ``upsert`` makes the chunk re-written after a crash idempotent.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton import BatchJob, BatchStatus, JobOperator, JobRepository
from conftest import JOBS, baton, launch_background, out_rows, wait_for_commits
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, text

MODES = ["copy", "insert", "upsert"]


def _out_table(url: str, name: str, *, keyed: bool) -> None:
    """``name`` (n, tag NOT NULL); keyed on n for upsert, else duplicates would show."""
    engine = create_engine(url)
    table = Table(
        name,
        MetaData(),
        Column("n", Integer, primary_key=keyed, autoincrement=False, nullable=False),
        Column("tag", String(20), nullable=False),
    )
    table.create(engine)
    engine.dispose()


def _writer_args(table: str, mode: str) -> dict[str, Any]:
    return {"table": table, "mode": mode, **({"conflict": ["n"]} if mode == "upsert" else {})}


def _numbers(repo: JobRepository, table: str) -> list[int]:
    with repo.engine.connect() as c:
        return [r[0] for r in c.execute(text(f"SELECT n FROM {table} ORDER BY n"))]


def _job(name: str, **chunk: Any) -> BatchJob:
    return BatchJob.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "parameters": [{"name": "count", "type": "int"}],
                "steps": [
                    {
                        "name": "load",
                        "chunk": {"reader": "testjobs:NumbersReader", "size": 10, **chunk},
                    }
                ],
            },
        }
    )


@pytest.mark.parametrize(
    ("mode", "tag"),
    # a tab in the tags: COPY escapes it
    [*((m, "t") for m in MODES), ("copy", "t\t")],
)
def test_a_bad_row_is_skipped_alone(
    repo: JobRepository, db_url: str, mode: str, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _out_table(db_url, "modes_out", keyed=mode == "upsert")
    monkeypatch.setenv("MODEJOBS_BAD", "15")  # NULL tag: a NOT NULL violation
    monkeypatch.setenv("MODEJOBS_TAG", tag)
    job = _job(
        "modes-skip",
        processor="modejobs:null_tag_at",
        writer="baton.items:SqlWriter",
        writerArgs=_writer_args("modes_out", mode),
        skip=["sqlalchemy.exc:IntegrityError"],
        skipLimit=1,
    )
    e = JobOperator(repo, in_process=True).start(job, {"count": 30})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    (load,) = repo.step_executions(e.id)
    assert (load.write_count, load.write_skip_count, load.rollback_count) == (29, 1, 1)
    assert _numbers(repo, "modes_out") == [n for n in range(1, 31) if n != 15]
    with repo.engine.connect() as c:
        tags = [r[0] for r in c.execute(text("SELECT tag FROM modes_out ORDER BY n"))]
    assert tags == [f"{tag}{n}" for n in range(1, 31) if n != 15]
    (skip,) = JobOperator(repo, in_process=True).explorer.skipped_items(e.id)
    assert skip.item == {"n": 15, "tag": None} and "IntegrityError" in skip.error


@pytest.mark.parametrize("mode", MODES)
def test_a_transient_failure_after_the_rows_went_in_is_retried(
    repo: JobRepository, db_url: str, mode: str
) -> None:
    import modejobs

    modejobs._failed_chunks.clear()
    _out_table(db_url, "modes_out", keyed=mode == "upsert")
    job = _job(
        "modes-retry",
        processor="testjobs:process",
        writer="modejobs:FlakyAfterWriteWriter",
        writerArgs=_writer_args("modes_out", mode),
        retry=["modejobs:Transient"],
        retryLimit=1,
    )
    e = JobOperator(repo, in_process=True).start(job, {"count": 25})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    (load,) = repo.step_executions(e.id)
    assert (load.write_count, load.commit_count, load.rollback_count) == (25, 3, 3)
    assert _numbers(repo, "modes_out") == list(range(1, 26))  # each once


def _manifest(tmp_path: Path, writer: str, args: dict[str, Any]) -> Path:
    """tests/jobs/numbers.yaml with another writer."""
    doc = yaml.safe_load((JOBS / "numbers.yaml").read_text())
    chunk = doc["spec"]["steps"][1]["chunk"]
    chunk["writer"], chunk["writerArgs"] = writer, args
    path = tmp_path / "numbers-modes.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_kill_9_then_restart_writes_every_row_exactly_once(
    db_url: str, tmp_path: Path, mode: str
) -> None:
    _out_table(db_url, "out", keyed=mode == "upsert")
    manifest = _manifest(tmp_path, "baton.items:SqlWriter", _writer_args("out", mode))
    proc, eid = launch_background(
        db_url, "-p", "count=1500", env={"BATON_TEST_SLEEP": "0.001"}, manifest=manifest
    )
    wait_for_commits(db_url, eid, 5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.5)  # the step process dies with its parent (PDEATHSIG)
    rows, distinct, _ = out_rows(db_url)
    assert rows == distinct and rows % 10 == 0 and rows < 1500  # whole chunks, none doubled
    restarted = baton("restart", str(eid), "--no-progress", "--json", db=db_url)
    assert restarted.returncode == 0, restarted.stderr
    load = next(s for s in json.loads(restarted.stdout)["steps"] if s["name"] == "load")
    assert load["readCount"] == 1500 - rows  # resumed from the last checkpoint
    assert out_rows(db_url) == (1500, 1500, 1500)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "doubled"), [("insert", 10), ("upsert", 0)])
def test_upsert_makes_a_chunk_rewritten_after_a_crash_idempotent(
    db_url: str, tmp_path: Path, mode: str, doubled: int
) -> None:
    """The writer has its own database: it commits chunk 3 (21..30), then dies before
    the checkpoint. The restart writes chunk 3 again: INSERT doubles it, upsert not."""
    own = f"sqlite:///{tmp_path / 'own.db'}"
    _out_table(own, "out", keyed=mode == "upsert")
    args = {**_writer_args("out", mode), "url": own}
    manifest = _manifest(tmp_path, "modejobs:DiesAfterCommitWriter", args)
    env = {"MODEJOBS_KILL_AT": "25", "MODEJOBS_MARKER": str(tmp_path / "killed")}
    run = baton("run", str(manifest), "-p", "count=50", "--no-progress", db=db_url, env=env)
    assert run.returncode != 0 and (tmp_path / "killed").exists(), run.stdout + run.stderr
    eid = int(run.stdout.split()[1])
    assert out_rows(own) == (30, 30, 30)  # chunk 3 committed, its checkpoint not
    restarted = baton("restart", str(eid), "--no-progress", db=db_url, env=env)
    assert restarted.returncode == 0, restarted.stderr
    assert out_rows(own) == (50 + doubled, 50, 50)
