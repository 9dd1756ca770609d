"""One measured window of the scale bench: a snapshot of every counter before and after,
the running units and the operator's memory sampled each second in between."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from scale import cluster as k8s
from scale import measure
from scale.report import PhaseResult

BATON_RESOURCES = ("batchexecutions", "batchjobs", "batchschedules")
# The fake nodes' own heartbeats (kwok renews 200 Leases every ~10 s): a fixed cost of
# the simulated cluster, not of Baton, left out of the per-execution total.
NODE_HEARTBEATS = ("leases", "nodes")


@dataclass
class Bench:
    args: argparse.Namespace
    env: dict[str, str]
    cluster: k8s.Cluster
    db: str
    operator_pod: str
    status_path: Path
    simulator: Any
    next_n: int = 1
    failed_before: int = 0
    too_many_before: int = 0

    def sim_status(self) -> dict[str, Any]:
        if self.simulator.poll() is not None:
            log = self.status_path.parent / "simulator.log"
            raise RuntimeError(f"the step simulator exited (see {log})")
        try:
            return dict(json.loads(self.status_path.read_text()))
        except (OSError, ValueError):
            return {}

    def pg(self) -> psycopg.Connection[Any]:
        """As the superuser over the socket: the bench's own queries are not counted
        under the operator's or the steps' role."""
        return psycopg.connect(
            host=self.args.socket, port=self.args.pg_port, user="postgres", dbname=self.db,
            autocommit=True,
        )  # fmt: skip


@dataclass
class Snapshot:
    at: float
    api: dict[tuple[str, str], float]
    reconcile: dict[float, float]
    cpu_seconds: float | None
    calls: dict[str, float]
    xacts: float


def snapshot(bench: Bench, pid: int | None) -> Snapshot:
    api = measure.api_requests(bench.cluster.raw("/metrics"))
    text = k8s.operator_metrics(bench.cluster, bench.operator_pod, bench.args.metrics_port)
    sample = measure.process_sample(pid) if pid else None
    with bench.pg() as conn:
        calls = {str(r): float(c) for r, c in conn.execute(measure.PG_STATEMENTS).fetchall()}
        row = conn.execute(measure.PG_DATABASE).fetchone()
    return Snapshot(
        at=time.time(),
        api=api,
        reconcile=measure.histogram_buckets(text, measure.RECONCILE_HISTOGRAM),
        cpu_seconds=sample.cpu_seconds if sample else None,
        calls=calls,
        xacts=float(row[0]) if row else 0.0,
    )


def measure_window(bench: Bench, name: str, executions: int, units: int) -> PhaseResult:
    """Counters over ``--window`` seconds; ``running`` = mean running executions."""
    pid = measure.operator_pid(bench.operator_pod)
    before = snapshot(bench, pid)
    running: list[float] = []
    rss: list[int] = []
    backends: list[float] = []
    finished = bench.sim_status().get("finished", 0)
    while time.time() - before.at < bench.args.window:
        status = bench.sim_status()
        running.append(min(executions, status.get("running", 0) / max(1, units)))
        sample = measure.process_sample(pid) if pid else None
        rss.append(sample.rss_bytes if sample else 0)
        with bench.pg() as conn:
            row = conn.execute(measure.PG_DATABASE).fetchone()
            backends.append(float(row[1]) if row else 0.0)
        time.sleep(1)
    after = snapshot(bench, pid)
    seconds = after.at - before.at
    mean_running = sum(running) / len(running) if running else 0.0
    return reduce_window(
        name, executions, units, before, after, seconds, mean_running, max(rss, default=0),
        max(backends, default=0), bench.sim_status().get("finished", 0) - finished,
    )  # fmt: skip


def reduce_window(
    name: str,
    executions: int,
    units: int,
    before: Snapshot,
    after: Snapshot,
    seconds: float,
    running: float,
    rss: int,
    backends: float,
    units_ended: int,
) -> PhaseResult:
    api = measure.delta(after.api, before.api)
    calls = measure.delta(after.calls, before.calls)
    hist = measure.delta(after.reconcile, before.reconcile)

    def rate(count: float) -> float | None:
        return measure.per_execution_minute(count, running, seconds)

    cpu = None
    if after.cpu_seconds is not None and before.cpu_seconds is not None:
        cpu = (after.cpu_seconds - before.cpu_seconds) / seconds
    top = sorted(api.items(), key=lambda kv: -kv[1])[:10]
    return PhaseResult(
        name=name,
        executions=executions,
        units=units,
        running=running,
        window_s=seconds,
        api_total=rate(sum(v for (_, r), v in api.items() if r not in NODE_HEARTBEATS)),
        api_baton=rate(sum(v for (_, r), v in api.items() if r in BATON_RESOURCES)),
        api_jobs=rate(sum(v for (_, r), v in api.items() if r == "jobs")),
        api_pods=rate(sum(v for (_, r), v in api.items() if r == "pods")),
        db_operator=rate(calls.get("baton", 0.0)),
        db_steps=rate(calls.get("baton_steps", 0.0)),
        db_xacts=rate(after.xacts - before.xacts),
        reconciles=hist.get(float("inf"), 0.0),
        reconcile_p50=measure.quantile(hist, 0.5),
        reconcile_p99=measure.quantile(hist, 0.99),
        rss_mib=rss / 2**20 if rss else None,
        cpu_cores=cpu,
        pg_backends_peak=backends,
        units_ended_in_window=units_ended,
        api_top={f"{v} {r}": round(c) for (v, r), c in top},
    )
