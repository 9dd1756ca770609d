"""``baton schedule run SCHEDULE.yaml`` (a schedule in the foreground, locally) and
``baton backfill SCHEDULE`` (a file: locally, in the foreground; a name: the
BatchSchedule's ``spec.backfill`` in the cluster, which the operator carries out).

A schedule file holds the BatchSchedule document and, unless ``--job FILE`` names
another file, the BatchJob it launches. On SIGINT/SIGTERM the running windows stop at
a chunk boundary (STOPPED: the next run restarts them) and the command exits 3."""

from __future__ import annotations

import threading
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from baton.cli.options import Context, Db, Kubeconfig, Namespace
from baton.cli.session import print_json, session
from baton.core.entities import JobExecution
from baton.core.errors import UnknownJob
from baton.core.status import BatchStatus, ExitCode
from baton.launch.listing import list_executions
from baton.launch.operator import JobOperator
from baton.launch.schedule import LocalScheduler, utcnow
from baton.registry.jobs import JobRegistry
from baton.repository.engine import DEFAULT_URL
from baton.schedule.keys import parse_window_time
from baton.schedule.model import load_schedule
from baton.schedule.windows import next_window
from baton.step.signals import handling_stop_signals

app = typer.Typer(help="Schedules: run one locally (BatchSchedule in the cluster).")

ScheduleFile = Annotated[
    str, typer.Argument(metavar="SCHEDULE.yaml", help="BatchSchedule YAML (and its BatchJob).")
]
JobFile = Annotated[
    str | None,
    typer.Option("--job", help="BatchJob YAML, .py file or module (default: SCHEDULE.yaml)."),
]
POLL_SECONDS = 1.0


def _scheduler(path: str, job_file: str | None, db: str) -> LocalScheduler:
    schedule = load_schedule(Path(path))
    job = JobRegistry().load(job_file or path).get(schedule.spec.job)
    repo = session.repository(db, interactive=False)
    with suppress(UnknownJob):  # windows a dead run left STARTED: FAILED (restartable)
        list_executions(repo, job.name, running=True, limit=None)
    return LocalScheduler(
        JobOperator(repo),
        job,
        schedule.spec,
        report=lambda line: session.out.print(line, highlight=False),
    )


class Interrupt:
    """SIGINT/SIGTERM: stop at the next chunk boundary, then exit 3."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, _signum: int, _frame: Any) -> None:
        self.event.set()


def _finish(scheduler: LocalScheduler, interrupt: Interrupt) -> ExitCode:
    """Wait for the running windows (stopping them at a chunk boundary once
    interrupted); the exit code: 3 interrupted, 1 a window's last execution did not
    complete, else 0."""
    stopped = False
    while scheduler.running:
        if interrupt.event.is_set() and not stopped:
            scheduler.stop_all()
            stopped = True
        scheduler.wait(POLL_SECONDS / 4)
    last: dict[int, JobExecution] = {}
    for e in sorted(scheduler.finished, key=lambda e: e.id):
        session.out.print(f"Execution {e.id} {e.status.value}", highlight=False)
        last[e.instance_id] = e
    if interrupt.event.is_set():
        return ExitCode.STOPPED
    if any(e.status is not BatchStatus.COMPLETED for e in last.values()):
        return ExitCode.FAILED
    return ExitCode.COMPLETED


@app.command("run")
def run(
    schedule: ScheduleFile,
    job: JobFile = None,
    db: Db = DEFAULT_URL,
    once: Annotated[
        bool, typer.Option("--once", help="One tick, wait for what it launched, exit.")
    ] = False,
    until: Annotated[
        str | None,
        typer.Option(help="Stop scheduling at this time (ISO 8601, in timeZone), then exit."),
    ] = None,
) -> None:
    """Run a BatchSchedule in the foreground, each window exactly once.

    The windows' instances are in the repository: a restart of this command never runs
    a COMPLETED window again and restarts a FAILED one; missed windows are caught up
    within the deadline."""
    scheduler = _scheduler(schedule, job, db)
    end = parse_window_time(until, scheduler.zone, "--until") if until else None
    interrupt = Interrupt()
    shown = None
    with handling_stop_signals(interrupt):
        while not interrupt.event.is_set():
            scheduler.tick()
            now = utcnow()
            wake = next_window(scheduler.engine, now)
            if wake != shown:  # a user who started it sees when something will happen
                when = wake.astimezone(scheduler.zone).isoformat()
                session.out.print(f"next window {when}", highlight=False)
                shown = wake
            if once or (end is not None and now >= end):
                break
            if end is not None:
                wake = min(wake, end)
            interrupt.event.wait(max(0.0, min((wake - now).total_seconds(), POLL_SECONDS)))
        code = _finish(scheduler, interrupt)
    raise typer.Exit(code)


def backfill(
    schedule: Annotated[
        str,
        typer.Argument(
            metavar="SCHEDULE",
            help="A BatchSchedule name (cluster) or a SCHEDULE.yaml file (locally).",
        ),
    ],
    start: Annotated[str, typer.Option("--from", help="First window (ISO 8601, in timeZone).")],
    end: Annotated[str, typer.Option("--to", help="Last window (ISO 8601, in timeZone).")],
    max_running: Annotated[
        int, typer.Option("--max-running", min=1, max=100, help="Windows running at once.")
    ] = 1,
    wait: Annotated[
        bool, typer.Option(help="Cluster: wait until every window has its final word.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Cluster: print the schedule.")] = False,
    job: JobFile = None,
    db: Db = DEFAULT_URL,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Run a schedule's windows in [--from, --to] (COMPLETED ones skipped).

    Oldest first, FAILED ones restarted from their checkpoint, at most --max-running at
    once. A SCHEDULE.yaml runs them here and waits; a BatchSchedule name sets its
    spec.backfill (the operator runs them; --wait waits)."""
    if Path(schedule).suffix in (".yaml", ".yml") or Path(schedule).exists():
        return _local_backfill(schedule, job, db, start, end, max_running)
    from baton_operator.k8s.schedules import ClusterSchedules

    cluster = ClusterSchedules(namespace, kubeconfig=kubeconfig, context=context)
    obj = cluster.backfill(schedule, start, end, max_running)
    if wait:
        obj = cluster.wait_backfill(schedule)
    if as_json:
        return print_json(obj)
    progress = (obj.get("status") or {}).get("backfill") or {}
    line = f"batchschedule/{schedule} backfill {start}..{end} (maxRunning {max_running})"
    if wait:
        line += f": {progress.get('completed', 0)}/{progress.get('total', 0)} completed"
    session.out.print(line, highlight=False)
    if wait and progress.get("completed") != progress.get("total"):
        raise typer.Exit(ExitCode.FAILED)


def _local_backfill(
    path: str, job: str | None, db: str, start: str, end: str, max_running: int
) -> None:
    scheduler = _scheduler(path, job, db)
    first = parse_window_time(start, scheduler.zone, "--from")
    last = parse_window_time(end, scheduler.zone, "--to")
    interrupt = Interrupt()
    with handling_stop_signals(interrupt):
        while not scheduler.backfill(first, last, max_running):
            if interrupt.event.wait(POLL_SECONDS / 4):
                break
        code = _finish(scheduler, interrupt)
    done = scheduler.progress
    if done is not None:
        session.out.print(
            f"backfill: {done.total} windows, {done.completed} completed, {done.failed} failed",
            highlight=False,
        )
        if code is ExitCode.COMPLETED and done.completed < done.total:
            code = ExitCode.FAILED
    raise typer.Exit(code)
