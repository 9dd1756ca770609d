#!/usr/bin/env python
"""Step-pod startup: what one partition's process costs beyond ``import baton``.

In a cluster every partition of a partitioned step is one pod of an Indexed Job, and
its whole life is one process: start Python, import, open the unit, run the tasklet,
record the end. This bench runs that process for a near-empty tasklet
(``counting:check_partition`` of examples/numbers) against PostgreSQL, exactly as the
operator's manifest says (command and env from ``baton_operator.manifests.step_job``),
and as the baseline the process a bare Indexed Job of the same image would run,
``python -c "import baton"`` with every public name loaded (the tasklet's own module
imports ``baton`` too, so that is the floor). Since ``import baton`` became lazy (PEP
562) it loads nothing until a name is used, so the baseline forces what the eager import
used to load, ``from baton import *``; the ratio stays comparable with earlier runs.

Both sides run ``--processes`` (100) processes, ``--parallel`` (20) at a time, like
pods sharing a node; batches alternate (ABBA) so machine drift hits both alike, and it
prints the step/bare wall-time ratio of each pair and their median (also for CPU time
of the processes, the steadier figure on a shared machine), never an absolute claim.
Children write bytecode to a private cache (warmed first), as an image built with pip
has compiled bytecode.

Outside the timed batches, ``--count`` (3) units run under a wrapper that counts, in
the real process, the SQL statements psycopg executed (pings and dialect setup
included), the transactions that reached COMMIT or ROLLBACK, and the connections; and
over a timed batch the server's own count of transactions of the bench database
(``pg_stat_database``) is divided by the units.

With ``--against REF`` (a git ref, e.g. ``main``) a third side runs the step process of
that commit's ``runtime/`` (exported with ``git archive``, first on ``PYTHONPATH``) on the
same database, so one run reports this tree's step process against the old one
(new/old wall and CPU ratios, and both statement counts): before/after in one run.

    python bench/step_startup.py                          # 100 units, 20 at a time, 3 pairs
    python bench/step_startup.py --processes 40 --repeat 2
    python bench/step_startup.py --processes 20 --parallel 4 --repeat 2 --against main
    python bench/step_startup.py --command cli  # `python -m baton step` (Typer, local units)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from baton import BatchJob, BatchStatus, JobRepository
from baton.flow.partitions import plan_partitions
from baton.repository import normalize_url
from baton_operator.config import OperatorConfig
from baton_operator.manifests import step_job
from benchdb import in_database
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "numbers"
JOB_NAME = "bench-step-startup"
STEP = "fan"
TASKLET = "counting:check_partition"
BARE = ["python", "-c", "from baton import *  # import baton, all public names loaded"]

# Runs a unit's command in this process after hooking psycopg, and writes what it
# counted to argv[1] when the process exits (also through SystemExit).
COUNTER = r"""
import atexit, json, runpy, sys
import psycopg
from psycopg.pq import TransactionStatus

out, argv = sys.argv[1], sys.argv[2:]
n = {"statements": 0, "transactions": 0, "connections": 0, "sql": []}

def counting(method):
    def wrapper(self, query, *args, **kwargs):
        n["statements"] += 1
        q = query if isinstance(query, str) else getattr(query, "as_string", lambda: str(query))()
        n["sql"].append(" ".join(str(q).split())[:120])
        return method(self, query, *args, **kwargs)
    return wrapper

def ending(method):
    def wrapper(self, *args, **kwargs):
        if self.pgconn.transaction_status != TransactionStatus.IDLE:
            n["transactions"] += 1
        return method(self, *args, **kwargs)
    return wrapper

connect = psycopg.Connection.connect
def connecting(*args, **kwargs):
    n["connections"] += 1
    return connect(*args, **kwargs)

psycopg.Cursor.execute = counting(psycopg.Cursor.execute)
psycopg.Cursor.executemany = counting(psycopg.Cursor.executemany)
psycopg.Connection.commit = ending(psycopg.Connection.commit)
psycopg.Connection.rollback = ending(psycopg.Connection.rollback)
psycopg.connect = psycopg.Connection.connect = connecting

def dump():
    with open(out, "w") as f:
        json.dump(n, f)
atexit.register(dump)

if len(argv) > 2 and argv[1] == "-m":
    sys.argv = [argv[2], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
else:  # a console script (`baton ...`): what the installed script runs
    from importlib.metadata import entry_points
    (script,) = entry_points(group="console_scripts", name=argv[0])
    sys.argv = argv
    script.load()()
"""


# ---------------------------------------------------------------- units to run


def bench_job(partitions: int) -> BatchJob:
    return BatchJob.model_validate(
        {
            "metadata": {"name": JOB_NAME},
            "spec": {
                "incrementer": "run.id",
                "steps": [{"name": STEP, "partitions": {"count": partitions}, "tasklet": TASKLET}],
            },
        }
    )


def prepare_units(repo: JobRepository, job: BatchJob, run_id: int) -> int:
    """A STARTED execution whose step ``fan`` has its partitions planned, as the
    operator leaves it before it creates the Indexed Job; returns its id."""
    execution = repo.launch(
        job.name,
        job.dump(),
        job.spec.bind({"run.id": run_id}),
        prevent_restart=False,
        source_dir=str(EXAMPLE),
        owner="bench",
    )
    execution = repo.transition(
        execution.id,
        BatchStatus.STARTED,
        action="start",
        start=True,
    )
    plan_partitions(repo, execution, job, STEP)
    return execution.id


@dataclass
class Unit:
    argv: list[str]
    env: dict[str, str]


def pod_units(execution_id: int, partitions: int, url: str, command: str) -> list[Unit]:
    """One unit per pod of the Indexed Job the operator would create for the step."""
    manifest = step_job(
        execution="bench",
        namespace="bench",
        uid="bench",
        execution_id=execution_id,
        attempt=1,
        step=STEP,
        config=OperatorConfig(),
        partitions=tuple(range(partitions)),
        working_dir=str(EXAMPLE),
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    argv = list(container["command"])
    if command == "cli":  # what the local executor spawns: through the Typer CLI
        argv = ["python", "-m", "baton", "step", *argv[argv.index(str(execution_id)) :]]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["BATON_DB_URL"] = url
    return [
        Unit(
            argv,
            env | {"JOB_COMPLETION_INDEX": str(i), "BATON_WORKER": f"bench-{execution_id}-{i}"},
        )
        for i in range(partitions)
    ]


def with_runtime(units: Sequence[Unit], runtime: Path) -> list[Unit]:
    """The same units, run with the ``baton`` package of ``runtime`` (an old tree)."""
    return [Unit(u.argv, u.env | {"PYTHONPATH": str(runtime)}) for u in units]


@contextmanager
def old_runtime(ref: str) -> Iterator[Path]:
    """The ``runtime/`` tree of git ``ref``, exported to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="baton-bench-old-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "runtime"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp) / "runtime"


def bare_units(n: int) -> list[Unit]:
    return [Unit(list(BARE), {}) for _ in range(n)]


def executable(argv: Sequence[str]) -> list[str]:
    """``python`` and console scripts (``baton``) from this interpreter's environment."""
    head = argv[0]
    if head in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    local = Path(sys.executable).parent / head
    return [str(local) if local.exists() else head, *argv[1:]]


# ---------------------------------------------------------------- running batches


@dataclass
class Batch:
    seconds: float
    cpu: float  # user + system of the processes


def child_env(pycache: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env | extra


def run_batch(units: Sequence[Unit], parallel: int, pycache: str) -> Batch:
    """Run the units ``parallel`` at a time; every one must exit 0."""
    pending = list(units)
    running: dict[int, subprocess.Popen[bytes]] = {}
    failures: list[str] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    while pending or running:
        while pending and len(running) < parallel:
            u = pending.pop(0)
            p = subprocess.Popen(
                executable(u.argv),
                cwd=EXAMPLE,
                env=child_env(pycache, u.env),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            running[p.pid] = p
        pid, status = os.wait()
        p = running.pop(pid, None)
        if p is None:
            continue
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode(errors="replace") if p.stderr else ""
        if p.stderr:
            p.stderr.close()
        if p.returncode != 0:
            failures.append(f"{' '.join(map(str, p.args))}: exit {p.returncode}: {err.strip()}")
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if failures:
        raise RuntimeError(f"{len(failures)} unit(s) failed; first: {failures[0]}")
    return Batch(seconds, cpu)


# ---------------------------------------------------------------- counting


@dataclass
class UnitCount:
    statements: int
    transactions: int
    connections: int
    sql: list[str]


def count_unit(unit: Unit, pycache: str) -> UnitCount:
    """Run one unit under COUNTER and read what it counted."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "count.json"
        proc = subprocess.run(
            [sys.executable, "-c", COUNTER, str(out), *unit.argv],
            cwd=EXAMPLE,
            env=child_env(pycache, unit.env),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"counted unit failed (exit {proc.returncode}): {proc.stderr}")
        data = json.loads(out.read_text())
    return UnitCount(data["statements"], data["transactions"], data["connections"], data["sql"])


def server_transactions(admin: Engine, database: str) -> int | None:
    """Committed + rolled back transactions of ``database`` so far (PostgreSQL's view)."""
    if admin.dialect.name != "postgresql":
        return None
    last = -1
    for _ in range(40):  # a backend reports its counts when it exits: wait until stable
        with admin.connect() as c:
            now = int(
                c.execute(
                    text(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = :d"
                    ),
                    {"d": database},
                ).scalar_one()
            )
        if now == last:
            return now
        last = now
        time.sleep(0.1)
    return last


def _units_completed(repo: JobRepository, execution_id: int) -> int:
    return sum(
        1
        for s in repo.step_executions(execution_id)
        if s.step_name == STEP and s.status is BatchStatus.COMPLETED
    )


# ---------------------------------------------------------------- the benchmark


@dataclass
class BenchResult:
    processes: int
    parallel: int
    command: list[str]
    counts: list[UnitCount]
    step: list[Batch] = field(default_factory=list)
    bare: list[Batch] = field(default_factory=list)
    server_transactions: list[float] = field(default_factory=list)  # per unit, per batch
    old: list[Batch] = field(default_factory=list)  # --against: the old tree's step process
    old_counts: list[UnitCount] = field(default_factory=list)

    @property
    def old_ratios(self) -> tuple[float, float]:
        """Median new/old step process ratios of wall and CPU time (pairs of batches)."""
        pairs = list(zip(self.step, self.old, strict=True))
        return (
            statistics.median(s.seconds / o.seconds for s, o in pairs),
            statistics.median(s.cpu / o.cpu for s, o in pairs),
        )

    @property
    def pair_ratios(self) -> list[float]:
        """Wall time step/bare of each pair of batches."""
        return [s.seconds / b.seconds for s, b in zip(self.step, self.bare, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.pair_ratios)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(s.cpu / b.cpu for s, b in zip(self.step, self.bare, strict=True))


def run_bench(
    url: str,
    *,
    processes: int = 100,
    parallel: int = 20,
    repeat: int = 3,
    count: int = 3,
    command: str = "manifest",
    old: Path | None = None,
    say: Callable[[str], None] = print,
) -> BenchResult:
    """Run the sides against the database at ``url`` (used as it is): this tree's step
    process, the bare baseline, and (``old``: an old ``runtime/`` tree) the old one."""
    repo = JobRepository(url)
    server = make_url(normalize_url(url))
    admin = create_engine(
        server.set(database="postgres") if server.get_backend_name() == "postgresql" else server,
        isolation_level="AUTOCOMMIT",
    )
    job = bench_job(processes)
    run_ids = iter(range(repo.next_run_id(JOB_NAME), 10**9))
    try:
        with tempfile.TemporaryDirectory(prefix="baton-bench-pyc-") as pycache:
            # Against an old tree, this tree's units too find `baton` on PYTHONPATH (not
            # through the editable install's finder), so both import alike.
            new = None if old is None else ROOT / "runtime"

            def units(runtime: Path | None = None) -> tuple[int, list[Unit]]:
                execution_id = prepare_units(repo, job, next(run_ids))
                made = pod_units(execution_id, processes, repo.url, command)
                runtime = runtime or new
                return execution_id, made if runtime is None else with_runtime(made, runtime)

            def counted(runtime: Path | None) -> tuple[list[str], list[UnitCount]]:
                """Warm the bytecode cache, then count a few units in real processes."""
                execution_id, some = units(runtime)
                run_batch(some[:1], 1, pycache)
                found = [count_unit(u, pycache) for u in some[1 : 1 + count]]
                if _units_completed(repo, execution_id) != 1 + len(found):
                    raise RuntimeError("the counted units did not all complete")
                return some[0].argv, found

            def timed(runtime: Path | None) -> Batch:
                execution_id, batch = units(runtime)
                before = server_transactions(admin, repo.engine.url.database or "")
                ran = run_batch(batch, parallel, pycache)
                after = server_transactions(admin, repo.engine.url.database or "")
                done = _units_completed(repo, execution_id)
                if done != processes:
                    raise RuntimeError(f"{done} of {processes} units completed")
                if runtime is None and before is not None and after is not None:
                    result.server_transactions.append((after - before) / processes)
                return ran

            run_batch(bare_units(1), 1, pycache)
            argv, counts = counted(None)
            say(f"unit command: {' '.join(argv)}")
            result = BenchResult(processes, parallel, argv, counts)
            say(f"per unit (in the process): {describe(result.counts)}")
            if old is not None:
                result.old_counts = counted(old)[1]
                say(f"per unit of the old tree's step process: {describe(result.old_counts)}")
            _timed_batches(
                result,
                repeat,
                timed,
                lambda: run_batch(bare_units(processes), parallel, pycache),
                old,
                say,
            )
        return result
    finally:
        admin.dispose()
        repo.dispose()


def _timed_batches(
    result: BenchResult,
    repeat: int,
    timed: Callable[[Path | None], Batch],
    bare: Callable[[], Batch],
    old: Path | None,
    say: Callable[[str], None],
) -> None:
    """``repeat`` rounds of one batch per side, the order reversed every other round
    (ABC, CBA) so machine drift hits the sides alike."""
    sides = ("step", "bare", "old") if old is not None else ("step", "bare")
    say(
        f"timing: {repeat} rounds of {result.processes} processes per side, "
        f"{result.parallel} at a time"
    )
    for rep in range(repeat):
        order = sides if rep % 2 == 0 else sides[::-1]
        batches: dict[str, Batch] = {}
        for side in order:
            batches[side] = {"step": lambda: timed(None), "bare": bare, "old": lambda: timed(old)}[
                side
            ]()
        result.step.append(batches["step"])
        result.bare.append(batches["bare"])
        line = (
            f"  round {rep + 1}: step/bare wall = "
            f"{batches['step'].seconds / batches['bare'].seconds:.3f}, CPU = "
            f"{batches['step'].cpu / batches['bare'].cpu:.3f}"
        )
        if "old" in batches:
            result.old.append(batches["old"])
            line += (
                f"; new/old step wall = {batches['step'].seconds / batches['old'].seconds:.3f},"
                f" CPU = {batches['step'].cpu / batches['old'].cpu:.3f}"
            )
        say(f"{line}  (order: {' then '.join(order)})")


def describe(counts: Sequence[UnitCount]) -> str:
    def per(values: list[int]) -> str:
        return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))

    return (
        f"{per([c.statements for c in counts])} SQL statements, "
        f"{per([c.transactions for c in counts])} transactions, "
        f"{per([c.connections for c in counts])} connection(s)"
    )


def report(result: BenchResult, say: Callable[[str], None] = print, verbose: bool = False) -> None:
    ratios = result.pair_ratios
    say("")
    say(
        f"step process / `python -c 'import baton'` (all public names loaded), "
        f"{result.processes} processes "
        f"{result.parallel} at a time: wall median {result.ratio:.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}); CPU median {result.cpu_ratio:.3f}"
    )
    say(f"per unit, connection setup included: {describe(result.counts)}")
    if result.server_transactions:
        say(
            "transactions per unit seen by PostgreSQL (pg_stat_database): "
            + ", ".join(f"{t:.2f}" for t in result.server_transactions)
        )
    if result.old:
        wall, cpu = result.old_ratios
        say(
            f"this tree's step process / the old tree's (--against): wall median {wall:.3f},"
            f" CPU median {cpu:.3f}; per unit: {describe(result.counts)} now, "
            f"{describe(result.old_counts)} before"
        )
    if verbose and result.counts:
        say("statements of one unit:")
        for s in result.counts[0].sql:
            say(f"  {s}")


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--processes", type=int, default=100, help="units (pods) per batch")
    p.add_argument("--parallel", type=int, default=20, help="processes at a time")
    p.add_argument("--repeat", type=int, default=3, help="timed pairs of batches")
    p.add_argument("--count", type=int, default=3, help="units run under the counter")
    p.add_argument(
        "--command",
        choices=("manifest", "cli"),
        default="manifest",
        help="the pod manifest's command, or `python -m baton step` (the Typer CLI, which"
        " the local executor runs)",
    )
    p.add_argument(
        "--against",
        metavar="REF",
        default=None,
        help="also run the step process of git REF's runtime/ (before/after in one run)",
    )
    p.add_argument("--verbose", action="store_true", help="list one unit's statements")
    p.add_argument(
        "--pg-url",
        default=None,
        help="PostgreSQL server (default: $BATON_TEST_PG_URL, else scripts/postgres.sh start);"
        " the bench runs in a fresh database on it",
    )
    p.add_argument(
        "--db-url", default=None, help="run in this database as it is (sqlite:/// or PG)"
    )
    args = p.parse_args(argv)
    if args.processes < 1 + args.count:
        p.error("--processes must exceed --count")

    def go(url: str, old: Path | None = None) -> BenchResult:
        return run_bench(
            url,
            processes=args.processes,
            parallel=args.parallel,
            repeat=args.repeat,
            count=args.count,
            command=args.command,
            old=old,
        )

    if args.against:
        with old_runtime(args.against) as old:
            result = in_database(args.db_url, args.pg_url, lambda url: go(url, old))
    else:
        result = in_database(args.db_url, args.pg_url, go)
    report(result, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
