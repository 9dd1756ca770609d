"""The step runtime through a real PgBouncer in transaction mode (what the chart's
``pgbouncer.enabled`` deploys): every SQL writer mode checkpoints through it, a
kill -9 then restart writes every row exactly once, and a fan-out of 50 concurrent
units completes against a role whose CONNECTION LIMIT is 4 — which the same fan-out
straight against PostgreSQL cannot."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton import BatchJob, BatchStatus, JobOperator, JobRepository
from conftest import JOBS, PG_URL, ROOT, baton, launch_background, out_rows, wait_for_commits
from pgbouncer import BINARY, Pooled, pgbouncer
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, text

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="BATON_TEST_PG_URL not set (use make test)"),
    pytest.mark.skipif(
        BINARY is None and not os.environ.get("CI"),
        reason="pgbouncer is not installed (apt-get install pgbouncer)",
    ),
]

LIMIT = 4  # the role's CONNECTION LIMIT
POOL = 3  # PgBouncer's server connections for the role: fewer than the limit
NUMBERS = ROOT / "examples" / "numbers"


@pytest.fixture(scope="module")
def pooled() -> Iterator[Pooled]:
    assert PG_URL
    with pgbouncer(PG_URL, limit=LIMIT, pool_size=POOL) as p:
        yield p


def _table(url: str, name: str, *, keyed: bool) -> None:
    engine = create_engine(url)
    Table(
        name,
        MetaData(),
        Column("n", Integer, primary_key=keyed, autoincrement=False, nullable=False),
        Column("tag", String(20), nullable=False),
    ).create(engine, checkfirst=True)
    engine.dispose()


def _sql(url: str, sql: str) -> None:
    """One statement straight to PostgreSQL (its own connection, closed after: the
    role's few connections are PgBouncer's)."""
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text(sql))
    engine.dispose()


def _rows(url: str, sql: str) -> Any:
    engine = create_engine(url)
    with engine.connect() as c:
        result = c.execute(text(sql)).one()
    engine.dispose()
    return tuple(result)


@pytest.mark.parametrize("mode", ["copy", "insert", "upsert"])
def test_every_writer_mode_checkpoints_through_pgbouncer(
    pooled: Pooled, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 chunks on one connection: psycopg would prepare the checkpoint statements from
    the fifth, which a transaction-mode pooler cannot keep (they are off)."""
    table = f"modes_{mode}"
    _table(pooled.url, table, keyed=mode == "upsert")
    monkeypatch.setenv("BATON_DB_POOLER", pooled.pooler)
    monkeypatch.setenv("BATON_DB_URL", pooled.url)  # the pooler fronts this one's server
    repo = JobRepository(pooled.url)
    assert f"{repo.engine.url.host}:{repo.engine.url.port}" == pooled.pooler
    args = {"table": table, "mode": mode, **({"conflict": ["n"]} if mode == "upsert" else {})}
    job = BatchJob.model_validate(
        {
            "metadata": {"name": f"pooled-{mode}"},
            "spec": {
                "parameters": [{"name": "count", "type": "int"}],
                "steps": [
                    {
                        "name": "load",
                        "chunk": {
                            "reader": "testjobs:NumbersReader",
                            "processor": "testjobs:process",
                            "writer": "baton.items:SqlWriter",
                            "writerArgs": args,
                            "size": 10,
                        },
                    }
                ],
            },
        }
    )
    try:
        e = JobOperator(repo, in_process=True).start(job, {"count": 300})
    finally:
        repo.dispose()
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    assert _rows(pooled.url, f"SELECT count(*), count(DISTINCT n) FROM {table}") == (300, 300)
    assert f"db={pooled.database} user={pooled.role}" in pooled.log.read_text()


@pytest.mark.slow
def test_kill_9_then_restart_through_pgbouncer_writes_every_row_exactly_once(
    pooled: Pooled, tmp_path: Path
) -> None:
    """COPY (the default mode): a client killed mid-transaction leaves PgBouncer a
    server connection it must reset before the restart's transactions use it."""
    doc = yaml.safe_load((JOBS / "numbers.yaml").read_text())
    chunk = doc["spec"]["steps"][1]["chunk"]
    chunk["writer"], chunk["writerArgs"] = "baton.items:SqlWriter", {"table": "out", "mode": "copy"}
    manifest = tmp_path / "numbers-pooled.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    _sql(pooled.url, "DROP TABLE IF EXISTS out")
    _table(pooled.url, "out", keyed=False)
    env = {**pooled.env, "BATON_TEST_SLEEP": "0.001"}
    count = 1500
    proc, eid = launch_background(pooled.url, "-p", f"count={count}", env=env, manifest=manifest)
    wait_for_commits(pooled.url, eid, 5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.5)  # the step process dies with its parent (PDEATHSIG)
    rows, distinct, _ = out_rows(pooled.url)
    assert rows == distinct and rows % 10 == 0 and rows < count  # whole chunks, none doubled
    restarted = baton("restart", str(eid), "--no-progress", "--json", db=pooled.url, env=env)
    assert restarted.returncode == 0, restarted.stderr
    load = next(s for s in json.loads(restarted.stdout)["steps"] if s["name"] == "load")
    assert load["readCount"] == count - rows  # resumed from the last checkpoint, once
    assert out_rows(pooled.url) == (count, count, count)


def _fanout(tmp_path: Path, parts: int) -> Path:
    doc = yaml.safe_load((NUMBERS / "partitioned.yaml").read_text())
    load = doc["spec"]["steps"][1]
    load["partitions"], load["parallelism"] = {"count": parts}, parts
    load["chunk"]["size"] = 10
    path = tmp_path / "fanout.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_fifty_concurrent_units_complete_under_a_connection_limit_of_four(
    pooled: Pooled, tmp_path: Path
) -> None:
    """50 forked units, each with its own engine and its connection held for its whole
    life (BATON_DB_POOL=keep), share PgBouncer's 3 server connections."""
    manifest = _fanout(tmp_path, 50)
    params = ["-p", "count=1000", "-p", "delayMs=20"]
    run = baton(
        "run", str(manifest), *params, "--no-progress", db=pooled.url, env=pooled.env,
        cwd=NUMBERS, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    counted = "SELECT count(*), count(DISTINCT n), max(n) FROM numbers"
    assert _rows(pooled.url, counted) == (1000, 1000, 1000)
    # and straight against PostgreSQL, the same fan-out runs into the role's limit
    again = baton(
        "run", str(manifest), "-p", "count=1001", "-p", "delayMs=20", "--no-progress",
        db=pooled.url, env={"BATON_DB_RETRY_SECONDS": "0"}, cwd=NUMBERS, timeout=240,
    )  # fmt: skip
    assert again.returncode != 0
    logs = again.stdout + again.stderr
    assert f'too many connections for role "{pooled.role}"' in logs, logs
