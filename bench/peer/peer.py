#!/usr/bin/env python
"""Baton against Spring Batch 6 on the same job, in the same run (``make bench-peer``).

CSV (generated, ``--rows``) → parse and convert → a PostgreSQL table, chunk 1000, each
side's job repository in the same database of a private PostgreSQL server started with
pg_stat_statements (``scripts/postgres.sh`` on port 55433, stopped at the end):

- Spring Batch 6: ``bench/peer`` built by Maven (FlatFileItemReader, ItemProcessor,
  JdbcBatchItemWriter with ``reWriteBatchedInserts=true``, JDBC JobRepository), one JVM
  per launch;
- Baton: ``baton run`` of a manifest written here (CsvReader → ``peerjob:convert`` →
  SQL writer in ``--modes``), one CLI process per launch, so its fixed cost counts.

Runs interleave (ABBA); then each side fails at 90 % and is restarted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import yaml
from baton.repository.engine import migrate, normalize_url
from report import (
    HEADER,
    Restart,
    Results,
    Run,
    ratio_lines,
    repository_statements,
    side_order,
    summary_rows,
    table,
)
from sqlalchemy import create_engine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BATON = Path(sys.executable).with_name("baton")
COLUMNS = "id bigint PRIMARY KEY, customer varchar(20) NOT NULL, amount numeric(12,2) NOT NULL, "
COLUMNS += "currency varchar(3) NOT NULL, amount_eur numeric(12,2) NOT NULL, "
COLUMNS += "order_date date NOT NULL, loaded_at timestamptz NOT NULL DEFAULT clock_timestamp()"


def baton_writer(mode: str, table_name: str) -> dict[str, Any]:
    """The chunk's writer keys for a Baton writer mode (copy | insert | upsert)."""
    args: dict[str, Any] = {"table": table_name, "mode": mode}
    if mode == "upsert":
        args["conflict"] = ["id"]
    return {"writer": "baton.items:SqlWriter", "writerArgs": args}


def write_manifest(path: Path, csv_path: Path, mode: str, chunk: int) -> None:
    spec = {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": f"peer-import-{mode}"},
        "spec": {
            "parameters": [{"name": "run", "type": "int", "identifying": True}],
            "steps": [
                {
                    "name": "load",
                    "chunk": {
                        "reader": "baton.items:CsvReader",
                        "readerArgs": {"path": str(csv_path)},
                        "processor": "peerjob:convert",
                        **baton_writer(mode, f"peer_out_{mode}"),
                        "size": chunk,
                    },
                }
            ],
        },
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def generate_csv(path: Path, rows: int) -> None:
    """The same rows every time (seeded): id, customer, amount, currency, day."""
    if path.exists():
        return
    rnd = random.Random(13)
    currencies = ("EUR", "USD", "GBP")
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write("id,customer,amount,currency,day\n")
        for i in range(1, rows + 1):
            f.write(
                f"{i},cust-{rnd.randrange(100000):05d},{rnd.randrange(100, 10**7) / 100:.2f},"
                f"{currencies[i % 3]},2026-01-{1 + i % 28:02d}\n"
            )
    tmp.rename(path)


class Bench:
    """One bench run against one PostgreSQL database: launches, measurements, checks."""

    def __init__(self, args: argparse.Namespace, url: str):
        self.args = args
        self.url = url  # postgresql://baton@127.0.0.1:PORT/DB
        self.conn = psycopg.connect(url, autocommit=True)
        self.work = Path(args.workdir)
        self.csv = self.work / f"peer-{args.rows}.csv"
        self.run_no = int(time.time())  # identifying parameter: a new instance per launch
        jar = HERE / "target"
        self.classpath = f"{jar / 'baton-peer-springbatch-1.jar'}:{jar / 'lib'}/*"

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []

    def prepare(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        generate_csv(self.csv, self.args.rows)
        if "pg_stat_statements" not in self.sql("SHOW shared_preload_libraries")[0][0]:
            sys.exit(
                f"peer.py: the server on port {self.args.pg_port} runs without"
                " pg_stat_statements (started by hand?): stop it and run again"
            )
        if not (HERE / "target" / "lib").is_dir():
            sys.exit("peer.py: build the Spring Batch side first (make bench-peer does)")
        self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        engine = create_engine(normalize_url(self.url))
        migrate(engine)  # Baton's schema, before any statement is counted
        engine.dispose()
        if self.sql("SELECT to_regclass('batch_job_instance')")[0][0] is None:
            jar = next((HERE / "target" / "lib").glob("spring-batch-core-*.jar"))
            with zipfile.ZipFile(jar) as z:
                self.sql(z.read("org/springframework/batch/core/schema-postgresql.sql").decode())
        for side in ["spring", *self.args.modes]:
            self.sql(f"CREATE TABLE IF NOT EXISTS peer_out_{side} ({COLUMNS})")
        for mode in self.args.modes:
            write_manifest(self.work / f"peer-{mode}.yaml", self.csv, mode, self.args.chunk)

    def command(self, side: str, restart_of: int | None) -> list[str]:
        if side == "spring":
            user, rest = self.url.removeprefix("postgresql://").split("@", 1)
            props = {
                "url": f"jdbc:postgresql://{rest}?user={user}",
                "input": self.csv,
                "table": "peer_out_spring",
                "run": self.run_no,
                "chunk": self.args.chunk,
            }
            defs = [f"-Dpeer.{k}={v}" for k, v in props.items()]
            return ["java", "-cp", self.classpath, *defs, "dev.baton.peer.PeerJob"]
        db = ["--db", self.url.replace("postgresql://", "postgresql+psycopg://"), "--json"]
        if restart_of is not None:
            return [str(BATON), "restart", str(restart_of), *db, "--no-progress"]
        manifest = self.work / f"peer-{side.removeprefix('baton-')}.yaml"
        return [str(BATON), "run", str(manifest), "-p", f"run={self.run_no}", *db, "--no-progress"]

    def launch(
        self, side: str, fail_at: int | None = None, restart_of: int | None = None
    ) -> dict[str, Any]:
        """Run one side's command; its execution id, step times, chunks and statements."""
        env = dict(os.environ, PYTHONPATH=str(HERE), BENCH_FAIL_AT=str(fail_at or ""))
        table_name = f"peer_out_{side.removeprefix('baton-')}"
        if restart_of is None:
            self.run_no += 1
            self.sql(f"TRUNCATE {table_name}")
        self.sql("SELECT pg_stat_statements_reset()")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.time()
        proc = subprocess.run(
            self.command(side, restart_of), env=env, capture_output=True, text=True
        )
        wall = time.time() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        stats = self.sql(
            "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = current_database()"
        )
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        expect_ok = fail_at is None
        if (proc.returncode == 0) != expect_ok:
            sys.exit(
                f"peer.py: {side} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
            )
        execution = int(out.get("execution") or out["id"])
        family = "spring" if side == "spring" else "baton"
        step_s, chunks = self.step_times(family, execution)
        return {
            "execution": execution,
            "start": start,
            "wall": wall,
            "cpu": cpu,
            "step": step_s,
            "chunks": chunks,
            "statements": repository_statements(stats, family),
            "stats": stats,
            "table": table_name,
        }

    def step_times(self, family: str, execution: int) -> tuple[float, int]:
        """Step seconds and commits, from the side's own repository."""
        if family == "spring":
            q = (
                "SELECT extract(epoch FROM end_time - start_time), commit_count"
                " FROM batch_step_execution WHERE job_execution_id = %s"
            )
        else:
            q = (
                "SELECT extract(epoch FROM end_time - start_time), commit_count"
                " FROM baton_step_execution WHERE job_execution_id = %s"
            )
        step, commits = self.sql(q, execution)[0]
        return float(step), int(commits)

    def check_rows(self, table_name: str) -> None:
        n, distinct = self.sql(f"SELECT count(*), count(DISTINCT id) FROM {table_name}")[0]
        if n != self.args.rows or distinct != n:
            sys.exit(
                f"peer.py: {table_name} has {n} rows ({distinct} distinct), not {self.args.rows}"
            )

    def timed(self, side: str) -> Run:
        r = self.launch(side)
        self.check_rows(r["table"])
        if self.args.verbose:
            family = "spring" if side == "spring" else "baton"
            for query, calls in sorted(r["stats"], key=lambda s: -s[1]):
                if repository_statements([(query, calls)], family):
                    print(f"    {calls:6} {' '.join(query.split())[:110]}")
        return Run(side, r["step"], r["wall"], r["chunks"], r["statements"], r["cpu"])

    def restart(self, side: str) -> Restart:
        """Fail at row 90 %, restart: time to the first new chunk's last row (the
        database's clock_timestamp() at its insert, just before its commit)."""
        chunk, fail_at = self.args.chunk, max(int(self.args.rows * 0.9), 1)
        failed = self.launch(side, fail_at=fail_at)
        done = (fail_at - 1) // chunk * chunk
        r = self.launch(side, restart_of=failed["execution"])
        self.check_rows(r["table"])
        (first,) = self.sql(
            f"SELECT extract(epoch FROM max(loaded_at)) FROM {r['table']}"
            " WHERE id > %s AND id <= %s",
            done,
            done + chunk,
        )[0]
        return Restart(side, float(first) - r["start"], r["wall"], r["step"])


def measure(args: argparse.Namespace, url: str) -> Results:
    bench = Bench(args, url)
    bench.prepare()
    sides = ["spring", *(f"baton-{m}" for m in args.modes)]
    results = Results(args.rows)
    for i in range(args.repeat):
        for side in side_order(sides, i):
            run = bench.timed(side)
            print(
                f"  {side:<13} step {run.step_s:6.2f} s  wall {run.wall_s:6.2f} s"
                f"  client CPU {run.cpu_s:6.2f} s",
                flush=True,
            )
            results.runs.append(run)
    for i in range(args.restarts):
        for side in side_order(sides[:2], i):
            r = bench.restart(side)
            print(
                f"  {side:<13} restart: first chunk {r.first_chunk_s:.2f} s,"
                f" total {r.total_s:.2f} s",
                flush=True,
            )
            results.restarts.append(r)
    return results


def server(args: argparse.Namespace, action: str) -> str:
    """scripts/postgres.sh with the bench's own port, directory and pg_stat_statements."""
    env = dict(
        os.environ,
        BATON_PG_PORT=str(args.pg_port),
        BATON_PG_DIR=args.pg_dir,
        BATON_PG_DB="baton_peer",
        BATON_PG_OPTS="-c shared_preload_libraries=pg_stat_statements",
    )
    out = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), action],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().replace("postgresql+psycopg://", "postgresql://")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3, help="timed runs per side (ABBA)")
    p.add_argument(
        "--restarts",
        type=int,
        default=None,
        help="fail-at-90%% restarts per side (default: --repeat)",
    )
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument(
        "--modes", default="copy,insert,upsert", help="Baton writer modes (copy,insert,upsert)"
    )
    p.add_argument("--pg-port", type=int, default=55433)
    p.add_argument("--pg-dir", default="/var/tmp/baton-peer-pg")
    p.add_argument("--workdir", default="/var/tmp/baton-peer", help="generated CSV and manifests")
    p.add_argument("--verbose", action="store_true", help="list each run's repository statements")
    p.add_argument("--keep-server", action="store_true", help="leave the PostgreSQL server running")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.restarts = args.repeat if args.restarts is None else args.restarts
    url = server(args, "start")
    try:
        print(
            f"bench/peer: {args.rows:,} rows, chunk {args.chunk}, {args.repeat} runs per side, "
            f"{args.restarts} restarts; PostgreSQL {url}",
            flush=True,
        )
        results = measure(args, url)
    finally:
        if not args.keep_server:
            server(args, "stop")
    print()
    print(table(HEADER, summary_rows(results)))
    print()
    print("\n".join(ratio_lines(results)))
    print("(one noisy machine: ratios of runs interleaved in this run, not absolute claims)")


if __name__ == "__main__":
    main()
