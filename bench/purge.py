#!/usr/bin/env python
"""``baton purge`` at scale: bounded memory, and running checkpoints never blocked for
more than one batch. Ratios against baselines measured in the same run.

For each database (PostgreSQL, and SQLite with ``--sqlite``):

1. **Memory.** A repository of ``--small`` step rows (100 000) and one of ``--steps``
   (1 000 000), each in finished instances of ``--per-instance`` steps, purged by a fresh
   process (``--child``) that resets its peak RSS (``/proc/self/clear_refs``) before the
   purge and reads it after: the ratio of the two growths should be ≈ 1, not ≈ 10.
2. **Checkpoints.** While the large purge runs, a writer commits real checkpoints
   (``JobRepository.checkpoint`` in a write transaction) of a running step of its own
   every 10 ms; its longest commit is compared with its longest commit over the same
   time without a purge, and with the purge's longest batch (its write transaction):
   a checkpoint waits for at most the batch in progress.

    python bench/purge.py                       # PostgreSQL, 100k vs 1M step rows
    python bench/purge.py --sqlite --steps 200000 --small 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baton.core.counts import Counts
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from baton.repository import purge as purging
from baton.repository.schema import (
    JobExecutionRow,
    JobInstanceRow,
    SkippedItemRow,
    StepExecutionRow,
)
from benchdb import in_database
from sqlalchemy import func, insert, select

OLD = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
INSERT_ROWS = 10_000


def fill(repo: JobRepository, steps: int, per_instance: int, start: int = 0) -> int:
    """Finished (COMPLETED, long ago) instances holding ``steps`` step rows and one
    skipped item per instance, inserted in bulk; how many instances."""
    instances = max(1, steps // per_instance)
    for first in range(0, instances, max(1, INSERT_ROWS // per_instance)):
        n = min(max(1, INSERT_ROWS // per_instance), instances - first)
        with repo.write() as conn:
            ids = [
                conn.execute(
                    insert(JobInstanceRow).values(
                        namespace="",
                        job_name="bench",
                        job_key=f"k{start + first + i}",
                        created_at=OLD,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                for i in range(n)
            ]
            executions = [
                conn.execute(
                    insert(JobExecutionRow).values(
                        instance_id=i,
                        status="COMPLETED",
                        created_at=OLD,
                        start_time=OLD,
                        end_time=OLD,
                        last_updated=OLD,
                        job_spec={},
                        context={"k": 1},
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                for i in ids
            ]
            rows = [
                {
                    "execution_id": e,
                    "step_name": "load",
                    "partition": p,
                    "status": "COMPLETED",
                    "start_time": OLD,
                    "last_updated": OLD,
                    "context": {"offset": p},
                }
                for e in executions
                for p in range(per_instance)
            ]
            conn.execute(insert(StepExecutionRow), rows)
            firsts = conn.execute(
                select(func.min(StepExecutionRow.id))
                .where(StepExecutionRow.execution_id.in_(executions))
                .group_by(StepExecutionRow.execution_id)
            ).scalars()
            conn.execute(
                insert(SkippedItemRow),
                [
                    {
                        "step_execution_id": s,
                        "phase": "read",
                        "item": {},
                        "error": "x",
                        "created_at": OLD,
                    }
                    for s in firsts
                ],
            )
    return instances


def peak_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(db_url: str, batch: int) -> dict[str, Any]:
    """The purge in this (fresh) process: its RSS growth and its batches' durations."""
    repo = JobRepository(db_url)
    durations: list[float] = []
    apply = purging._apply

    def timed(*args: Any) -> None:
        t = time.perf_counter()
        apply(*args)
        durations.append(time.perf_counter() - t)

    purging._apply = timed  # type: ignore[assignment]
    before = peak_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    t = time.perf_counter()
    report = purging.purge(repo, purging.PurgeOptions(dt.timedelta(days=1), batch=batch))
    seconds = time.perf_counter() - t
    growth = peak_kb("VmHWM") - before
    repo.dispose()
    return {
        "growthKb": max(0, growth),
        "seconds": seconds,
        "maxBatchSeconds": max(durations, default=0.0),
        "batches": report.batches,
        **report.deleted,
    }


def purge_in_child(db_url: str, batch: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", db_url, "--batch", str(batch)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Writer:
    """A running step committing a checkpoint every ``pause`` seconds; its commit
    latencies (transaction begin to commit) while ``run`` is on."""

    def __init__(self, repo: JobRepository, pause: float = 0.01) -> None:
        params = JobParameters((JobParameter("w", ParamType.INT, 1, True),))
        e = repo.launch("writer", {}, params, prevent_restart=False, source_dir=None, owner="b")
        repo.transition(e.id, BatchStatus.STARTED, action="start")
        self.repo, self.pause = repo, pause
        self.step = repo.open_step(repo.get_execution(e.id), "load", None, worker="bench")
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._n = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._n += 1
            t = time.perf_counter()
            with self.repo.write() as conn:
                self.repo.checkpoint(conn, self.step, Counts(read=self._n), {"n": self._n})
            self.latencies.append(time.perf_counter() - t)
            time.sleep(self.pause)

    def during(self, work: Callable[[], Any]) -> tuple[Any, list[float]]:
        self.latencies = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        try:
            result = work()
        finally:
            self._stop.set()
            self._thread.join()
        return result, self.latencies


@dataclass
class Result:
    backend: str
    small: dict[str, Any]
    large: dict[str, Any]
    baseline: list[float]
    during: list[float]

    @property
    def memory_ratio(self) -> float:
        return max(1, self.large["growthKb"]) / max(1, self.small["growthKb"])

    @property
    def latency_ratio(self) -> float:
        return max(self.during, default=0) / max(max(self.baseline, default=0), 1e-6)

    @property
    def batch_ratio(self) -> float:
        return max(self.during, default=0) / max(self.large["maxBatchSeconds"], 1e-6)


def run_bench(
    db_url: str, *, steps: int, small: int, per_instance: int, batch: int,
    say: Callable[[str], None] = print,
) -> Result:  # fmt: skip
    """Both sizes in the database of ``db_url`` (emptied by the purges)."""
    repo = JobRepository(db_url)
    writer = Writer(repo)
    fill(repo, small, per_instance)
    small_run = purge_in_child(db_url, batch)
    say(f"  {small:>9} step rows: {_line(small_run)}")
    fill(repo, steps, per_instance, start=steps)
    large_run, during = writer.during(lambda: purge_in_child(db_url, batch))
    say(f"  {steps:>9} step rows: {_line(large_run)}")
    end = time.monotonic() + min(max(large_run["seconds"], 1.0), 30.0)
    _, baseline = writer.during(lambda: time.sleep(max(0.0, end - time.monotonic())))
    repo.dispose()
    return Result(db_url.split(":", 1)[0], small_run, large_run, baseline, during)


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['steps']} steps, {r['instances']} instances in {r['batches']} batches, "
        f"{r['seconds']:.1f}s, longest batch {r['maxBatchSeconds'] * 1000:.0f} ms, "
        f"peak RSS +{r['growthKb'] / 1024:.1f} MiB"
    )


def report(r: Result, say: Callable[[str], None] = print) -> None:
    def ms(xs: list[float]) -> str:
        top, mid = max(xs, default=0) * 1000, statistics.median(xs or [0]) * 1000
        return f"max {top:.0f} ms, median {mid:.1f} ms"

    say(f"{r.backend}: peak RSS growth large/small = {r.memory_ratio:.2f} (bounded: ≈ 1)")
    say(f"  checkpoint commits without purge ({len(r.baseline)}): {ms(r.baseline)}")
    say(f"  checkpoint commits during purge ({len(r.during)}): {ms(r.during)}")
    say(f"  max commit latency during/without purge = {r.latency_ratio:.2f}")
    say(f"  max commit latency during purge / longest purge batch = {r.batch_ratio:.2f} (≤ ~1)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--small", type=int, default=100_000)
    p.add_argument("--per-instance", type=int, default=100)
    p.add_argument("--batch", type=int, default=purging.DEFAULT_BATCH)
    p.add_argument("--pg-url", help="PostgreSQL server (a fresh database is made on it)")
    p.add_argument("--sqlite", action="store_true", help="also on SQLite (a temporary file)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.batch)))
        return 0

    def one(url: str) -> Result:
        r = run_bench(url, steps=a.steps, small=a.small, per_instance=a.per_instance, batch=a.batch)
        report(r)
        return r

    in_database(None, a.pg_url, one)
    if a.sqlite:
        with tempfile.TemporaryDirectory() as d:
            one(f"sqlite:///{d}/bench.db")
    return 0


if __name__ == "__main__":
    sys.exit(main())
