#!/usr/bin/env python
"""Restart of a CSV job after a failure at 90 %: Baton's offset checkpoint against a full
run's per-row cost and against a restart from a count-only checkpoint, in the same run.

The job: a generated CSV of ``--rows`` orders → parse and convert each row → a
``SqlWriter`` into the repository's database (PostgreSQL unless ``--db-url``), chunks of
``--chunk-size``. For each repetition (a new job instance each):

- **full**: the job runs to the end: its step time gives the per-row cost;
- **offset restart**: the job fails at row 90 %, then ``restart`` (in-process): the
  built-in ``CsvReader`` seeks to its checkpointed byte offset;
- **count restart**: the same with a reader that checkpoints only its count (as a
  checkpoint written before offsets existed): the restart parses every row it skips.

It prints, per restart, the time from the restart call to its first committed chunk
(against a chunk of the full run) and its step time against the full run's cost of the
rows left (1.0: proportional to the rows left). Ratios in this run; no timing asserted.

    python bench/file_restart.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton import BatchJob, BatchStatus, CsvReader, JobOperator, JobRepository, SqlWriter
from benchdb import in_database
from sqlalchemy import BigInteger, Column, MetaData, Numeric, String, Table, event

MODULE = __name__  # the components below are referenced as MODULE:attr
RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}
out_table = Table(
    "bench_restart_out",
    MetaData(),
    Column("id", BigInteger, nullable=False),
    Column("customer", String(16), nullable=False),
    Column("amount_eur", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
)
FAIL_AT: int | None = None  # the row whose processing fails (set around the first run)
FIRST_WRITE: list[float] = []  # when the current run wrote its first chunk


def make_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "customer", "amount", "currency"])
        currencies = sorted(RATES)
        for i in range(1, rows + 1):
            w.writerow(
                [i, f"c{i * 7919 % 5000:05d}", f"{i * 31 % 50000 / 100:.2f}", currencies[i % 3]]
            )


def convert(row: dict[str, Any]) -> dict[str, Any]:
    n = int(row["id"])
    if n == FAIL_AT:
        raise RuntimeError(f"injected failure at row {n}")
    amount = float(row["amount"])
    return {
        "id": n,
        "customer": row["customer"],
        "amount_eur": round(amount * RATES[row["currency"]], 2),
        "currency": row["currency"],
    }


class CountOnlyCsvReader(CsvReader):
    """Checkpoints only the record count: a restart skips by parsing, as before offsets."""

    def update(self, context: MutableMapping[str, Any]) -> None:
        super().update(context)
        del context[self.offset_key], context[self.line_key]


class Writer(SqlWriter):
    table = out_table
    create = True

    def write(self, items: list[Any]) -> None:
        if not FIRST_WRITE:
            FIRST_WRITE.append(time.perf_counter())
        super().write(items)


def job(reader: str, chunk_size: int, path: Path) -> BatchJob:
    return BatchJob.model_validate(
        {
            "metadata": {"name": "bench-file-restart"},
            "spec": {
                "parameters": [{"name": "run", "type": "int"}],
                "steps": [
                    {
                        "name": "load",
                        "chunk": {
                            "reader": f"{MODULE}:{reader}",
                            "processor": f"{MODULE}:convert",
                            "writer": f"{MODULE}:Writer",
                            "readerArgs": {"path": str(path)},
                            "size": chunk_size,
                        },
                    }
                ],
            },
        }
    )


@dataclass
class Timed:
    seconds: float  # from the call to the end of the step
    first_chunk: float  # from the call to the first chunk's commit
    rows: int  # rows read
    execution_id: int


@dataclass
class Result:
    rows: int
    chunk_size: int
    full: list[Timed] = field(default_factory=list)
    offset: list[Timed] = field(default_factory=list)
    count: list[Timed] = field(default_factory=list)


def timed(repo: JobRepository, call: Callable[[], Any]) -> Timed:
    """Run ``call`` (a start or restart); the first commit after its first write is
    when its first chunk was committed."""
    commits: list[float] = []

    def on_commit(_conn: Any) -> None:
        if FIRST_WRITE and not commits:
            commits.append(time.perf_counter())

    FIRST_WRITE.clear()
    event.listen(repo.engine, "commit", on_commit)
    try:
        start = time.perf_counter()
        execution = call()
        seconds = time.perf_counter() - start
    finally:
        event.remove(repo.engine, "commit", on_commit)
    if execution.status not in (BatchStatus.COMPLETED, BatchStatus.FAILED):
        raise RuntimeError(
            f"bench job ended {execution.status.value}: {execution.exit_description}"
        )
    (step,) = repo.step_executions(execution.id)
    first = commits[0] - start if commits else seconds
    return Timed(seconds, first, step.read_count, execution.id)


def run_bench(
    db_url: str, *, rows: int, repeat: int, chunk_size: int, say: Callable[[str], None] = print
) -> Result:
    global FAIL_AT
    result = Result(rows, chunk_size)
    repo = JobRepository(db_url)
    op = JobOperator(repo, in_process=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.csv"
        make_csv(path, rows)
        say(
            f"{rows} rows ({path.stat().st_size / 1e6:.1f} MB), chunks of {chunk_size}, "
            f"failing at row {rows * 9 // 10}"
        )
        instance = 0
        for _ in range(repeat):
            for reader, into in (
                ("CsvReader", result.full),
                ("CsvReader", result.offset),
                ("CountOnlyCsvReader", result.count),
            ):
                instance += 1
                j, params = job(reader, chunk_size, path), {"run": instance}
                if into is result.full:
                    into.append(timed(repo, lambda j=j, p=params: op.start(j, p)))
                    continue
                FAIL_AT = rows * 9 // 10
                try:
                    failed = timed(repo, lambda j=j, p=params: op.start(j, p))
                finally:
                    FAIL_AT = None
                into.append(timed(repo, lambda e=failed.execution_id: op.restart(e)))
    repo.dispose()
    return result


def report(result: Result, say: Callable[[str], None] = print) -> None:
    """Medians; each restart against the full run: its first chunk against the full
    run's first chunk (both include launching), its step against the full run's cost of
    the rows it had left (1.0: proportional to the rows left)."""
    full = statistics.median(t.seconds for t in result.full)
    full_first = statistics.median(t.first_chunk for t in result.full)
    per_row = full / result.rows
    say(
        f"full run: step {full:.2f} s ({per_row * 1e6:.1f} us a row); "
        f"first chunk {full_first:.3f} s"
    )
    for name, runs in (("offset restart", result.offset), ("count restart", result.count)):
        left = statistics.median(t.rows for t in runs)
        first = statistics.median(t.first_chunk for t in runs)
        step = statistics.median(t.seconds for t in runs)
        say(
            f"{name}: {left:.0f} rows left; first chunk {first:.3f} s = "
            f"{first / full_first:.2f}x the full run's; step {step:.2f} s = "
            f"{step / (per_row * left):.2f}x the full run's cost of the rows left"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--db-url", help="run in this repository as it is (e.g. SQLite)")
    parser.add_argument("--pg-url", help="a PostgreSQL server: a fresh database on it")
    args = parser.parse_args(argv)

    def bench(url: str) -> Result:
        return run_bench(url, rows=args.rows, repeat=args.repeat, chunk_size=args.chunk_size)

    report(in_database(args.db_url, args.pg_url, bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
