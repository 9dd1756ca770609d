#!/usr/bin/env python
"""Chunk-step throughput: Baton's SQL writer modes against a hand-written psycopg
loop, in the same run.

The same job every way: read N generated rows, transform each, insert them into a
table in the job repository's PostgreSQL, one transaction per ``--chunk-size`` rows.

(a) Baton, once per ``--modes`` entry (copy, insert, upsert): a chunk step (a
    generated-rows reader, a transforming processor, a ``SqlWriter`` subclass with
    ``writerArgs: {mode: ...}``), launched in-process with
    ``JobOperator.start_next_instance``; every chunk's rows commit together with the
    chunk's checkpoint.
(b) Hand-written: psycopg 3, ``executemany`` + ``commit`` every ``--chunk-size`` rows.

Repetitions alternate the order of the sides (ABBA: forward, then reversed) so that
drift of the machine hits every side alike, and the results are ratios of throughputs
measured in this run, never an absolute claim.

Before timing, the job is executed ``--history`` times (default 50) while a SQLAlchemy
``before_cursor_execute`` listener on ``repo.engine`` counts the statements of every
transaction; the statements per chunk of the 1st and of the last execution are printed
and must be equal: the chunk loop runs no query whose cost grows with the history.

    python bench/chunk_throughput.py --rows 200000 --repeat 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton import BatchJob, BatchStatus, JobOperator, JobRepository, SqlWriter
from baton.repository import normalize_url
from benchdb import in_database
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
MODULE = __name__  # the components below are referenced as MODULE:attr
JOB_NAME = "bench-chunk-throughput"
CATEGORIES = ("books", "games", "music", "tools", "toys")

metadata = MetaData()
COLUMNS = ("id", "name", "amount_cents", "category", "even")


def _out_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),  # upsert's key
        Column("name", String(32), nullable=False),
        Column("amount_cents", BigInteger, nullable=False),
        Column("category", String(16), nullable=False),
        Column("even", Boolean, nullable=False),
    )


baton_out = _out_table("bench_out_baton")
hand_out = _out_table("bench_out_hand")


# ---------------------------------------------------------------- the job, both ways


def generate(i: int) -> dict[str, Any]:
    """Row ``i`` of the input (deterministic, so a restart would read the same)."""
    return {"id": i, "name": f"item-{i:09d}", "amount": (i * 7919) % 100_000 / 100, "cat": i % 5}


def transform(item: dict[str, Any]) -> dict[str, Any]:
    cents = round(item["amount"] * 100)
    return {
        "id": item["id"],
        "name": item["name"].upper(),
        "amount_cents": cents,
        "category": CATEGORIES[item["cat"]],
        "even": cents % 2 == 0,
    }


class GeneratedRows:
    """Reads ``generate(1..rows)``; restartable by the count of rows read."""

    def __init__(self, params: Any):
        self.rows = int(params["rows"])
        self.pos = 0

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("generated.pos", 0))

    def read(self) -> dict[str, Any] | None:
        if self.pos >= self.rows:
            return None
        self.pos += 1
        return generate(self.pos)

    def update(self, context: MutableMapping[str, Any]) -> None:
        context["generated.pos"] = self.pos

    def close(self) -> None:
        pass

    def total(self) -> int:
        return self.rows - self.pos


class BenchWriter(SqlWriter):
    """Inserts into ``bench_out_baton`` inside each chunk's checkpoint transaction."""

    table = baton_out


MODES = ("copy", "insert", "upsert")
TARGETS = {"copy": 2.0, "insert": 0.95, "upsert": 0.9}  # x the hand-written loop


def writer_args(mode: str) -> dict[str, Any]:
    return {"mode": mode, **({"conflict": ["id"]} if mode == "upsert" else {})}


def bench_job(chunk_size: int, mode: str = "copy") -> BatchJob:
    return BatchJob.model_validate(
        {
            "metadata": {"name": JOB_NAME},
            "spec": {
                "incrementer": "run.id",
                "parameters": [{"name": "rows", "type": "int", "identifying": False}],
                "steps": [
                    {
                        "name": "load",
                        "chunk": {
                            "reader": f"{MODULE}:GeneratedRows",
                            "processor": f"{MODULE}:transform",
                            "writer": f"{MODULE}:BenchWriter",
                            "writerArgs": writer_args(mode),
                            "size": chunk_size,
                        },
                    }
                ],
            },
        }
    )


def run_baton(op: JobOperator, job: BatchJob, rows: int) -> int:
    """One execution of the job through Baton; returns its execution id."""
    execution = op.start_next_instance(job, {"rows": rows})
    if execution.status is not BatchStatus.COMPLETED:
        raise RuntimeError(
            f"bench job ended {execution.status.value}: {execution.exit_description}"
        )
    return execution.id


def run_hand(conn: Any, style: str, rows: int, chunk_size: int) -> None:
    """The same job, hand-written: executemany + commit every ``chunk_size`` rows."""
    placeholders = ", ".join([style] * len(COLUMNS))
    stmt = f"INSERT INTO {hand_out.name} ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    cur = conn.cursor()
    batch: list[tuple[Any, ...]] = []
    for i in range(1, rows + 1):
        r = transform(generate(i))
        batch.append((r["id"], r["name"], r["amount_cents"], r["category"], r["even"]))
        if len(batch) == chunk_size:
            cur.executemany(stmt, batch)
            conn.commit()
            batch = []
    if batch:
        cur.executemany(stmt, batch)
        conn.commit()
    cur.close()


@contextmanager
def _dbapi_connect(url: str) -> Iterator[tuple[Any, str]]:
    """A plain DBAPI connection (psycopg 3, or sqlite3 for the smoke test)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(parsed.database or ":memory:", timeout=60)
        style = "?"
    else:
        import psycopg

        conn = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(False))
        style = "%s"
    try:
        yield conn, style
    finally:
        conn.close()


# ---------------------------------------------------------------- counting statements


@dataclass
class Transaction:
    statements: list[str] = field(default_factory=list)
    insert_rows: list[int] = field(default_factory=list)  # parameter sets per INSERT

    @property
    def is_chunk(self) -> bool:
        """A chunk transaction is the one holding the checkpoint UPDATE ... RETURNING."""
        return any(
            s.startswith("UPDATE baton_step_execution") and "RETURNING" in s
            for s in self.statements
        )


@dataclass
class ExecutionCount:
    """What one job execution sent through ``repo.engine``."""

    chunks: int
    per_chunk: dict[int, int]  # statements per chunk transaction → how many chunks
    outside_chunks: int  # statements of the execution not in a chunk transaction
    insert_style: str  # how the chunk's rows travelled
    checkouts: int  # pool checkouts of the execution (each a pre-ping round trip on PG)

    @property
    def statements_per_chunk(self) -> int | None:
        return next(iter(self.per_chunk)) if len(self.per_chunk) == 1 else None

    def describe(self) -> str:
        per = ", ".join(f"{n} stmts x {c}" for n, c in sorted(self.per_chunk.items()))
        return (
            f"{self.chunks} chunks [{per}], {self.outside_chunks} statements outside chunks, "
            f"insert = {self.insert_style}, {self.checkouts} pool checkouts"
        )


class StatementCounter:
    """Counts the statements of every transaction on an engine (SQLAlchemy events)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock = threading.Lock()
        self._open: dict[int, Transaction] = {}
        self.done: list[Transaction] = []
        self.outside = 0
        self.checkouts = 0
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = [
            (engine, "begin", self._begin),
            (engine, "commit", self._end),
            (engine, "rollback", self._end),
            (engine, "before_cursor_execute", self._statement),
            (engine.pool, "checkout", self._checkout),
        ]
        for target, name, fn in self._listeners:
            # insert=True: run before the engine's own "begin" hook (SQLite's BEGIN
            # IMMEDIATE), so that statement counts as part of the transaction.
            event.listen(target, name, fn, insert=True)

    def close(self) -> None:
        for target, name, fn in self._listeners:
            event.remove(target, name, fn)

    def reset(self) -> None:
        with self._lock:
            self.done = []
            self.outside = 0
            self.checkouts = 0

    def _begin(self, conn: Connection) -> None:
        with self._lock:
            self._open[id(conn)] = Transaction()

    def _end(self, conn: Connection) -> None:
        with self._lock:
            tx = self._open.pop(id(conn), None)
            if tx is not None:
                self.done.append(tx)

    def _checkout(self, *_: Any) -> None:
        with self._lock:
            self.checkouts += 1

    def _statement(
        self,
        conn: Connection,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        with self._lock:
            tx = self._open.get(id(conn))
            if tx is None:
                self.outside += 1
                return
            tx.statements.append(statement.lstrip())
            if statement.lstrip().upper().startswith("INSERT"):
                if executemany:
                    tx.insert_rows.append(len(parameters))
                else:
                    tx.insert_rows.append(-(statement.upper().count("),") + 1))

    def snapshot(self) -> ExecutionCount:
        with self._lock:
            chunks = [t for t in self.done if t.is_chunk]
            others = sum(len(t.statements) for t in self.done if not t.is_chunk)
            styles = Counter(
                f"{len(c.insert_rows)} executemany of {c.insert_rows[0]} rows"
                if c.insert_rows and c.insert_rows[0] > 0
                else f"{len(c.insert_rows)} multi-VALUES statement(s)"
                if c.insert_rows
                else "COPY (no SQL statement event)"
                for c in chunks
            )
            return ExecutionCount(
                chunks=len(chunks),
                per_chunk=dict(Counter(len(c.statements) for c in chunks)),
                outside_chunks=others + self.outside,
                insert_style="; ".join(f"{s} (x{n})" for s, n in styles.items()) or "-",
                checkouts=self.checkouts,
            )


# ---------------------------------------------------------------- CPU accounting


class CpuMeter:
    """CPU seconds spent by this process plus the PostgreSQL backends serving the
    bench database (read from /proc when the server runs on this machine).

    Wall-clock ratios on a shared machine move with other tenants' load; the CPU
    cost of a run does not, so it is reported next to them.
    """

    def __init__(self, admin: Engine):
        self.admin = admin
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.server = admin.dialect.name == "postgresql" and self._backends() is not None

    def _backends(self) -> dict[int, float] | None:
        with self.admin.connect() as conn:
            pids = conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalars()
            out: dict[int, float] = {}
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    return None  # not local, or not ours to read
                out[pid] = (int(fields[11]) + int(fields[12])) / self.tick
            return out

    def sample(self) -> tuple[float, dict[int, float]]:
        return time.process_time(), (self._backends() or {}) if self.server else {}

    def spent(self, before: tuple[float, dict[int, float]]) -> tuple[float, float]:
        """(client, server) CPU seconds since ``before``."""
        client = time.process_time() - before[0]
        if not self.server:
            return client, 0.0
        now = self._backends() or {}
        server = sum(t - before[1].get(pid, 0.0) for pid, t in now.items())
        return client, server


# ---------------------------------------------------------------- the benchmark


@dataclass
class BenchResult:
    rows: int
    chunk_size: int
    first: ExecutionCount
    last: ExecutionCount
    history: int
    modes: tuple[str, ...] = ("copy",)
    seconds: dict[str, list[float]] = field(default_factory=dict)  # side -> per repetition
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (client, server)

    @property
    def hand_seconds(self) -> list[float]:
        return self.seconds["hand"]

    def pair_ratios(self, mode: str) -> list[float]:
        """Throughput ratio Baton/hand-written of each repetition (time_hand / time_baton)."""
        return [h / b for b, h in zip(self.seconds[mode], self.hand_seconds, strict=True)]

    def ratio(self, mode: str) -> float:
        """Median over repetitions of the paired ratios."""
        return statistics.median(self.pair_ratios(mode))

    def cpu_ratio(self, mode: str) -> float:
        """CPU cost ratio hand-written/Baton (client + server), median over repetitions."""
        return statistics.median(
            sum(h) / sum(b) for b, h in zip(self.cpu[mode], self.cpu["hand"], strict=True)
        )

    @property
    def same_statements_per_chunk(self) -> bool:
        return self.first.per_chunk.keys() == self.last.per_chunk.keys() and (
            self.first.statements_per_chunk is not None
        )


def _prepare_tables(engine: Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def _clear(engine: Engine) -> None:
    """Empty both output tables (outside the timed region)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {baton_out.name}, {hand_out.name}"))
        else:
            for t in (baton_out, hand_out):
                conn.execute(t.delete())


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one())


def run_bench(
    url: str,
    *,
    rows: int,
    repeat: int,
    chunk_size: int = 1000,
    history: int = 50,
    history_rows: int | None = None,
    modes: tuple[str, ...] = MODES,
    say: Callable[[str], None] = print,
) -> BenchResult:
    """Run every side against the database at ``url`` (used as it is)."""
    repo = JobRepository(url)
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        _prepare_tables(admin)
        jobs = {mode: bench_job(chunk_size, mode) for mode in modes}
        op = JobOperator(repo, in_process=True)
        history_rows = history_rows or 5 * chunk_size

        # 1. Statements per chunk, on the 1st and the last of `history` executions.
        say(
            f"history: {history} executions of {history_rows} rows (chunk size {chunk_size}, "
            f"mode {modes[0]})"
        )
        first, last = _history(op, repo, admin, jobs[modes[0]], (history, history_rows))
        say(f"  execution 1:  {first.describe()}")
        say(f"  execution {history}: {last.describe()}")

        # 2. Throughput, ABBA-interleaved, on a repository holding that history.
        result = BenchResult(rows, chunk_size, first, last, history, modes)
        sides = ("hand", *modes)
        for side in sides:
            result.seconds[side], result.cpu[side] = [], []
        meter = CpuMeter(admin)
        with _dbapi_connect(url) as (conn, style):
            run_hand(conn, style, min(rows, 10 * chunk_size), chunk_size)  # warm-up
            say(f"throughput: {repeat} x {rows} rows each of {', '.join(sides)}, interleaved")
            for rep in range(repeat):
                order = sides if rep % 2 == 0 else sides[::-1]
                for side in order:
                    _clear(admin)
                    before = meter.sample()
                    t0 = time.perf_counter()
                    if side == "hand":
                        run_hand(conn, style, rows, chunk_size)
                    else:
                        run_baton(op, jobs[side], rows)
                    result.seconds[side].append(time.perf_counter() - t0)
                    result.cpu[side].append(meter.spent(before))
                    written = _count(admin, hand_out if side == "hand" else baton_out)
                    if written != rows:
                        raise RuntimeError(f"{side} wrote {written} rows, expected {rows}")
                say(
                    f"  rep {rep + 1} (order: {' '.join(order)}): Baton/hand-written throughput "
                    + ", ".join(f"{m} {result.pair_ratios(m)[-1]:.3f}" for m in modes)
                )
        return result
    finally:
        admin.dispose()
        repo.dispose()


def _history(
    op: JobOperator, repo: JobRepository, admin: Engine, job: BatchJob, size: tuple[int, int]
) -> tuple[ExecutionCount, ExecutionCount]:
    """The statements of the 1st and the last of ``size[0]`` executions of ``size[1]`` rows
    (the output table emptied before each, on another engine: ids repeat)."""
    history, rows = size
    counter = StatementCounter(repo.engine)
    counts: list[ExecutionCount] = []
    try:
        for _ in range(history):
            _clear(admin)
            counter.reset()
            run_baton(op, job, rows)
            counts.append(counter.snapshot())
    finally:
        counter.close()
    return counts[0], counts[-1]


def report(result: BenchResult, say: Callable[[str], None] = print) -> None:
    say("")
    say(
        f"Baton / hand-written psycopg executemany throughput at chunk size "
        f"{result.chunk_size}, {result.rows} rows (median of paired ratios, min..max; "
        "CPU cost ratio client + server):"
    )
    hand_median = statistics.median(result.hand_seconds)
    for mode in result.modes:
        ratios = result.pair_ratios(mode)
        target = TARGETS[mode]
        say(
            f"  {mode:<7} {result.ratio(mode):.3f}  ({min(ratios):.3f}..{max(ratios):.3f}, "
            f"ratio of medians {hand_median / statistics.median(result.seconds[mode]):.3f}, "
            f"CPU {result.cpu_ratio(mode):.3f})  target >= {target}  ->  "
            + ("met" if result.ratio(mode) >= target else "NOT met")
        )
    say(
        f"statements per chunk: execution 1 = {_per(result.first)}, "
        f"execution {result.history} = {_per(result.last)}  ->  "
        + ("same" if result.same_statements_per_chunk else "DIFFERENT")
    )
    say(
        f"statements outside chunks per execution: execution 1 = {result.first.outside_chunks}, "
        f"execution {result.history} = {result.last.outside_chunks} "
        "(launch, step bookkeeping and the executor's reads when a unit ends: constant in run time)"
    )


def _per(c: ExecutionCount) -> str:
    n = c.statements_per_chunk
    return str(n) if n is not None else str(c.per_chunk)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rows", type=int, default=100_000, help="rows per timed run")
    p.add_argument("--repeat", type=int, default=6, help="timed runs of each side")
    p.add_argument("--chunk-size", type=int, default=1000)
    p.add_argument("--history", type=int, default=50, help="executions before timing")
    p.add_argument("--history-rows", type=int, default=None, help="rows per history run")
    p.add_argument(
        "--pg-url",
        default=None,
        help="PostgreSQL server (default: $BATON_TEST_PG_URL, else scripts/postgres.sh start);"
        " the bench runs in a fresh database on it",
    )
    p.add_argument(
        "--db-url", default=None, help="run in this database as it is (sqlite:/// or PG)"
    )
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help="the SqlWriter modes to time against the hand-written loop, comma-separated"
        " (copy: PostgreSQL COPY; insert, upsert: the driver's executemany)",
    )
    args = p.parse_args(argv)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes takes some of {', '.join(MODES)}")
    if args.rows % args.chunk_size:
        p.error("--rows must be a multiple of --chunk-size (all chunks full)")

    def go(url: str) -> BenchResult:
        return run_bench(
            url,
            rows=args.rows,
            repeat=args.repeat,
            chunk_size=args.chunk_size,
            history=args.history,
            history_rows=args.history_rows,
            modes=modes,
        )

    result = in_database(args.db_url, args.pg_url, go)
    report(result)
    return 0 if result.same_statements_per_chunk else 1


if __name__ == "__main__":
    sys.exit(main())
