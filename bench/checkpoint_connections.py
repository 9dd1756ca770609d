#!/usr/bin/env python
"""What a checkpoint costs under each way of holding the PostgreSQL connection
(``BATON_DB_POOL``, see baton.repository.pooling), measured in the same run.

The same chunk step every way (bench/chunk_throughput.py's generated rows and SQL
writer, ``--size`` rows a chunk, ``--chunks`` chunks), launched in-process:

- ``keep``: one connection for the whole step (the default); psycopg prepares a
  statement from its 5th execution;
- ``keep, unprepared``: the same with prepared statements off, as through a pooler
  (prepared statements break behind transaction-mode poolers);
- ``release``: a connection per transaction (NullPool): no idle connection between
  chunks, a connect per chunk;
- with ``--pooler HOST:PORT`` (a PgBouncer in front of the same server), ``keep`` and
  ``release`` through it as well.

Per side: milliseconds per chunk (median of ``--repeat``, order alternating ABBA) and
its ratio to ``keep``, the statements per chunk and the connections opened per chunk
(SQLAlchemy's ``before_cursor_execute`` and pool ``connect`` events). Indicative only on
a busy machine: read the ratios, not the milliseconds.

    python bench/checkpoint_connections.py --chunks 200 --repeat 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from baton import JobOperator, JobRepository
from baton.repository.engine import make_engine
from benchdb import in_database
from chunk_throughput import _clear, _prepare_tables, bench_job
from sqlalchemy import Engine, event


@dataclass
class Side:
    name: str
    env: dict[str, str]
    unprepared: bool = False
    seconds: list[float] = field(default_factory=list)
    statements: int = 0
    connects: int = 0
    chunks: int = 0


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("BATON_DB_POOL", "BATON_DB_POOLER")}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _engine(url: str, side: Side) -> Engine:
    with _environ(side.env):
        engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        side.connects += 1
        if side.unprepared:
            dbapi_conn.prepare_threshold = None  # what BATON_DB_POOLER sets

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(*_args: Any) -> None:
        side.statements += 1

    return engine


def run_side(url: str, side: Side, chunks: int, size: int) -> None:
    engine = _engine(url, side)
    repo = JobRepository(url, engine=engine)
    _clear(engine)
    job = bench_job(size, "insert")
    side.statements = side.connects = 0
    start = time.perf_counter()
    e = JobOperator(repo, in_process=True).start_next_instance(job, {"rows": chunks * size})
    side.seconds.append(time.perf_counter() - start)
    side.chunks = chunks
    assert e.status.value == "COMPLETED", e.exit_description
    repo.dispose()


def run_bench(
    url: str,
    *,
    chunks: int,
    size: int,
    repeat: int,
    pooler: str | None = None,
    say: Callable[[str], None] = print,
) -> list[Side]:
    sides = [
        Side("keep", {"BATON_DB_POOL": "keep"}),
        Side("keep, unprepared", {"BATON_DB_POOL": "keep"}, unprepared=True),
        Side("release", {"BATON_DB_POOL": "release"}),
    ]
    if pooler:
        for pool in ("keep", "release"):
            sides.append(
                Side(f"{pool} via pooler", {"BATON_DB_POOL": pool, "BATON_DB_POOLER": pooler})
            )
    engine = make_engine(url)
    _prepare_tables(engine)
    engine.dispose()
    for r in range(repeat):
        for side in sides if r % 4 in (0, 3) else reversed(sides):
            run_side(url, side, chunks, size)
    return sides


def report(sides: list[Side], say: Callable[[str], None] = print) -> None:
    base = statistics.median(sides[0].seconds) / sides[0].chunks
    say(f"{'side':<20} {'ms/chunk':>9} {'x keep':>7} {'stmts/chunk':>12} {'connects/chunk':>15}")
    for s in sides:
        per = statistics.median(s.seconds) / s.chunks
        say(
            f"{s.name:<20} {per * 1000:>9.2f} {per / base:>7.2f} "
            f"{s.statements / s.chunks:>12.1f} {s.connects / s.chunks:>15.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pg-url", help="PostgreSQL server (default $BATON_TEST_PG_URL)")
    p.add_argument("--db-url", help="an existing database to use as it is")
    p.add_argument("--chunks", type=int, default=200)
    p.add_argument("--size", type=int, default=100, help="rows a chunk")
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--pooler", help="HOST:PORT of a PgBouncer in front of the same server")
    a = p.parse_args(argv)
    sides = in_database(
        a.db_url,
        a.pg_url,
        lambda url: run_bench(url, chunks=a.chunks, size=a.size, repeat=a.repeat, pooler=a.pooler),
    )
    report(sides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
