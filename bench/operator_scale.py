#!/usr/bin/env python
"""The operator at scale, on a simulated cluster: API and database traffic per running
execution, reconcile latency, memory and CPU, at 1, 100 and 1,000 running executions
and with fan-outs of 1,000 partitions.

Needs the e2e cluster with kwok and the scale database (``make e2e-scale`` brings them
up and runs this): 200 fake nodes (``e2e/cluster kwok-up``), whose pods the step
simulator (``bench/scale/simulator.py``, started here) runs through the real step
runtime, and a PostgreSQL with ``max_connections=100`` and pg_stat_statements behind a
host PgBouncer (``e2e/cluster scale-db-up``). It installs the chart as release
``baton-scale`` (namespace scale-system) into a fresh database, then per phase applies
the executions at once in namespace scale-bench, waits until their units run, measures
over ``--window`` seconds, waits for them to complete, and deletes them.

Rates are per running execution per minute, ``running`` being the mean number of
executions with a unit running over the window (sampled each second): API requests
from the API server's ``apiserver_request_total`` (all clients: the operator, the Job
controller, the scheduler, kwok and the simulator; the Baton rows too), database
statements from pg_stat_statements split by role (the operator connects as ``baton``,
the simulated steps as ``baton_steps``). The machine matters: compare the ratios
between phases of one run, not numbers across machines.

    python bench/operator_scale.py                         # 1, 100, 1000; 10 fan-outs of 1000
    python bench/operator_scale.py --sizes 1,20,100 --fanouts 1 --partitions 100   # small
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from baton.repository import JobRepository
from scale import cluster as k8s
from scale import measure
from scale.report import PhaseResult, print_report
from scale.window import Bench, measure_window

PG_LOG = Path("/var/lib/baton-e2e/logs/postgres-scale.log")
TERMINAL = {"Completed", "Failed", "Stopped", "Abandoned", "Rejected", "Compensated"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1,100,1000", help="Running executions per phase.")
    p.add_argument("--fanouts", type=int, default=10, help="Fan-out executions at once.")
    p.add_argument("--partitions", type=int, default=1000, help="Partitions per fan-out.")
    p.add_argument("--seconds", type=int, default=60, help="How long each unit runs.")
    p.add_argument("--chunks", type=int, default=6, help="Checkpoints per unit.")
    p.add_argument("--window", type=float, default=30, help="Measured seconds per phase.")
    p.add_argument(
        "--settle",
        type=float,
        default=0,
        help="Seconds to wait after every unit started, before the window (lets the "
        "status writes of the executions started last settle).",
    )
    p.add_argument("--pg-port", type=int, default=55434, help="The scale PostgreSQL.")
    p.add_argument("--bouncer-port", type=int, default=55435, help="Its host PgBouncer.")
    p.add_argument(
        "--steps-via",
        choices=["pgbouncer", "direct"],
        default="pgbouncer",
        help="How the simulated steps reach PostgreSQL.",
    )
    p.add_argument("--max-units", type=int, default=1500, help="Simulator threads.")
    p.add_argument("--metrics-port", type=int, default=9090, help="The operator's.")
    p.add_argument("--pg-log", type=Path, default=PG_LOG, help="The scale PostgreSQL's log.")
    p.add_argument("--socket", default="/run/baton-e2e/postgres-scale", help="Its socket dir.")
    p.add_argument("--set", action="append", default=[], help="Extra helm --set (repeatable).")
    p.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    p.add_argument("--keep", action="store_true", help="Leave the release and namespace.")
    return p.parse_args(argv)


def fresh_database(args: argparse.Namespace, env: dict[str, str]) -> str:
    """A new database on the scale PostgreSQL, migrated; returns its name."""
    name = time.strftime("baton_scale_%Y%m%d%H%M%S")
    with psycopg.connect(host=args.socket, port=args.pg_port, user="postgres", dbname="postgres",
                         autocommit=True) as conn:  # fmt: skip
        conn.execute(f'CREATE DATABASE "{name}" OWNER {env["E2E_DB_USER"]}')
    with psycopg.connect(host=args.socket, port=args.pg_port, user="postgres", dbname=name,
                         autocommit=True) as conn:  # fmt: skip
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")  # a view per database
    url = db_url(env, "127.0.0.1", args.pg_port, name, env["E2E_DB_USER"])
    JobRepository(url).dispose()  # migrates: the operator and the steps find the schema
    return name


def db_url(env: dict[str, str], host: str, port: int, db: str, user: str) -> str:
    return f"postgresql://{user}:{env['E2E_DB_PASSWORD']}@{host}:{port}/{db}"


def start_simulator(args: argparse.Namespace, env: dict[str, str], db: str, status: Path) -> Any:
    port = args.bouncer_port if args.steps_via == "pgbouncer" else args.pg_port
    url = db_url(env, "127.0.0.1", port, db, "baton_steps")
    cmd = [
        sys.executable, str(Path(__file__).resolve().parent / "scale" / "simulator.py"),
        "--db-url", url, "--status", str(status), "--kubeconfig", env["E2E_KUBECONFIG"],
        "--max-units", str(args.max_units),
    ]  # fmt: skip
    log = (status.parent / "simulator.log").open("w")
    # through PgBouncer the steps say so, as the chart's pods do (no prepared statements)
    pooler = {"BATON_DB_POOLER": f"127.0.0.1:{port}"} if args.steps_via == "pgbouncer" else {}
    return subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **pooler},
    )


def run_phase(bench: Bench, name: str, job: str, count: int, units: int) -> PhaseResult:
    """Apply ``count`` executions of ``job`` (``units`` units each) at once; measure."""
    args, cluster = bench.args, bench.cluster
    first_n = bench.next_n
    bench.next_n += count
    manifests = k8s.executions(name, job, count, first_n, args.seconds, args.chunks)
    ended_before = bench.sim_status().get("finished", 0)
    _, log_offset = measure.too_many_clients(args.pg_log, 0)
    t0 = time.time()
    cluster.apply(manifests, k8s.NAMESPACE)
    k8s.wait_until(
        f"{count} Jobs of phase {name}",
        lambda: cluster.count("jobs", k8s.NAMESPACE, "baton.dev/execution") >= count,
        timeout=max(300, count),
    )
    jobs_created = time.time() - t0
    want = count * units
    try:
        k8s.wait_until(
            f"{want} units running",
            lambda: bench.sim_status().get("started", 0) - ended_before >= want,
            timeout=args.seconds,
        )
    except TimeoutError as e:
        print(f"  note: {e}; measuring what runs", flush=True)
    period = args.seconds / max(args.chunks, 1)
    if args.window < period:  # units that started together checkpoint in lockstep
        print(
            f"  note: the {args.window:g} s window is shorter than a checkpoint period "
            f"({period:g} s): per-execution progress writes may be missed or doubled",
            flush=True,
        )
    time.sleep(args.settle)
    result = measure_window(bench, name, count, units)
    result.jobs_created_s = jobs_created
    result.completed_lag_s = wait_completed(bench, name, count)
    status = bench.sim_status()
    result.failed_units = status.get("failed", 0) - bench.failed_before
    bench.failed_before = status.get("failed", 0)
    logged, _ = measure.too_many_clients(args.pg_log, log_offset)
    seen = status.get("tooManyClients", 0) - bench.too_many_before
    bench.too_many_before = status.get("tooManyClients", 0)
    result.too_many_clients = max(logged, seen)
    result.errors = status.get("errors", [])[-3:]
    delete_phase(bench, name)
    return result


def wait_completed(bench: Bench, name: str, count: int) -> float | None:
    """Seconds from the phase's last unit ending to the last execution's terminal
    phase (polled every second), None if they do not all end in time."""
    cluster = bench.cluster

    def done() -> bool:
        phases = cluster.names_and_phases(k8s.NAMESPACE)
        mine = [p for n, p in phases.items() if n.startswith(f"{name}-")]
        return len(mine) >= count and all(p in TERMINAL for p in mine)

    try:
        k8s.wait_until(f"phase {name} ended", done, timeout=bench.args.seconds * 3 + 300)
    except TimeoutError as e:
        print(f"  {e}", flush=True)
        return None
    ended = time.time()
    last = bench.sim_status().get("lastEnd", {})
    mine = [t for key, t in last.items() if key.split("/", 1)[-1].startswith(f"{name}-")]
    return ended - max(mine) if mine else None


def delete_phase(bench: Bench, name: str) -> None:
    cluster = bench.cluster
    cluster.run("-n", k8s.NAMESPACE, "delete", "bx", "-l", f"scale.baton.dev/phase={name}",
                "--wait=true", timeout=900)  # fmt: skip
    k8s.wait_until(
        f"the Jobs of phase {name} gone",
        lambda: cluster.count("jobs", k8s.NAMESPACE, "baton.dev/execution") == 0,
        timeout=600,
        every=2,
    )


def prepare(bench: Bench) -> None:
    cluster, args = bench.cluster, bench.args
    cluster.run("create", "namespace", k8s.NAMESPACE)
    step_url = db_url(bench.env, bench.env["E2E_DB_HOST"], args.pg_port, bench.db, "baton_steps")
    cluster.run("-n", k8s.NAMESPACE, "create", "secret", "generic", "baton-db",
                f"--from-literal=url={step_url}")  # fmt: skip
    cluster.apply(k8s.batch_jobs(args.partitions), k8s.NAMESPACE)


def run(args: argparse.Namespace) -> list[PhaseResult]:
    env = k8s.read_env()
    cluster = k8s.Cluster(env["E2E_KUBECTL"], env["E2E_HELM"], env["E2E_KUBECONFIG"])
    nodes = cluster.count("nodes", "default", "type=kwok")
    if nodes == 0:
        raise SystemExit("error: no kwok nodes: run e2e/cluster kwok-up (or make e2e-scale)")
    db = fresh_database(args, env)
    url = db_url(env, env["E2E_DB_HOST"], args.pg_port, db, env["E2E_DB_USER"])
    sets = [x for s in args.set for x in ("--set", s)]
    work = Path(tempfile.mkdtemp(prefix="baton-scale-"))
    print(f"kwok nodes: {nodes}; database {db}; simulator log {work}/simulator.log", flush=True)
    sim = None
    try:
        pod = k8s.install_operator(cluster, env, url, sets)
        sim = start_simulator(args, env, db, work / "status.json")
        bench = Bench(args, env, cluster, db, pod, work / "status.json", sim)
        prepare(bench)
        return phases(bench)
    finally:
        if sim is not None:
            sim.send_signal(signal.SIGINT)
            try:
                sim.wait(20)
            except subprocess.TimeoutExpired:
                sim.kill()
        if not args.keep:
            k8s.cleanup(cluster)


def phases(bench: Bench) -> list[PhaseResult]:
    args = bench.args
    results = []
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        print(f"phase: {size} running executions", flush=True)
        results.append(run_phase(bench, f"run{size}", k8s.STEP_JOB, size, 1))
        print(f"  {results[-1].line()}", flush=True)
    if args.fanouts > 0:
        print(f"phase: {args.fanouts} fan-outs of {args.partitions} partitions", flush=True)
        name = f"fan{args.fanouts}x{args.partitions}"
        results.append(run_phase(bench, name, k8s.FAN_JOB, args.fanouts, args.partitions))
        print(f"  {results[-1].line()}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.time()
    results = run(args)
    print_report(results, time.time() - start)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
