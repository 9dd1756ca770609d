"""Running a job locally to its end, with a live progress bar: ``run``, ``start-next``
and ``restart`` (the last also in a cluster). The exit code is the final status's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from baton.cli.cluster import cluster_for, report_object
from baton.cli.options import (
    AsJson,
    Context,
    Ctx,
    Db,
    JobName,
    Kubeconfig,
    Namespace,
    NoProgress,
    Params,
    Target,
    id_of,
    parse_cli_context,
    parse_cli_params,
)
from baton.cli.session import print_json, session
from baton.cli.tables import styled, unit_name
from baton.core.entities import JobExecution, StepExecution
from baton.core.status import BatchStatus, ExitCode
from baton.explore.views import execution_view
from baton.launch.operator import JobOperator
from baton.registry.jobs import JobRegistry
from baton.repository.engine import DEFAULT_URL

Launched = Callable[[JobExecution], None]
Launch = Callable[[JobOperator, Launched], JobExecution]
Manifest = Annotated[
    str, typer.Argument(help="BatchJob YAML, a .py file or a module with @baton.job.")
]
Deadline = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        metavar="SECONDS",
        min=1,
        help="Fail the execution (DeadlineExceeded, exit 1; restartable) if it runs "
        "longer: its steps stop at a chunk boundary, killed after the grace period.",
    ),
]


class ProgressView:
    """A live bar per step, fed by the executor (from its units' progress events).
    Redrawn by the executor's thread on each tick, not by a refresh thread of Rich's:
    the executor forks its units, which is safe only from a single-threaded process."""

    def __init__(self, console: Console, enabled: bool):
        self.progress = Progress(
            TextColumn("[bold]{task.fields[step]:<12}"),
            BarColumn(bar_width=20),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn(
                "{task.fields[read]:>9,} read {task.fields[written]:>9,} written"
                " {task.fields[skipped]:>3,} skipped"
            ),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not enabled,
            auto_refresh=False,
        )
        self.tasks: dict[tuple[str, int | None], TaskID] = {}

    def __enter__(self) -> ProgressView:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def tick(self, _execution: JobExecution, steps: list[StepExecution]) -> None:
        for s in steps:
            key = (s.step_name, s.partition)
            name = unit_name(s.step_name, s.partition)
            done = s.read_count + s.read_skip_count
            total = s.total_count
            if s.status is BatchStatus.COMPLETED:
                total = total if total is not None and total >= done else max(done, 1)
                done = total
            fields: dict[str, Any] = {
                "step": name,
                "read": s.read_count,
                "written": s.write_count,
                "skipped": s.skip_count,
                "status": styled(s.status.value),
            }
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(name, total=total, **fields)
            self.progress.update(self.tasks[key], completed=done, total=total, **fields)
        self.progress.refresh()


def _execute(
    db: str, as_json: bool, no_progress: bool, launch: Launch, deadline: float | None = None
) -> None:
    """Shared by run/start-next/restart: print the id, show progress, map the exit code."""
    repo = session.repository(db, interactive=False)  # the executor: waits for step locks
    info = session.err if as_json else session.out
    view = ProgressView(info, enabled=not no_progress and not as_json)

    def launched(e: JobExecution) -> None:
        params = " ".join(f"{k}={v}" for k, v in e.parameters.as_json().items())
        info.print(
            f"Execution [bold]{e.id}[/] of job [bold]{e.job_name}[/] "
            f"(instance {e.instance_id}, attempt {e.attempt}) {params}".rstrip(),
            highlight=False,
        )

    with view:
        operator = JobOperator(repo, on_tick=view.tick, deadline_seconds=deadline)
        final = launch(operator, launched)
        view.tick(final, repo.step_executions(final.id))
    if as_json:
        print_json(execution_view(final, repo.step_executions(final.id)))
    else:
        line = f"Execution {final.id} {styled(final.status.value)}"
        if final.exit_description:
            line += f": {final.exit_description.splitlines()[0]}"
        info.print(line, highlight=False)
    raise typer.Exit(ExitCode.for_status(final.status))


def run(
    manifest: Manifest,
    param: Params = None,
    ctx: Ctx = None,
    job: JobName = None,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    no_progress: NoProgress = False,
    deadline: Deadline = None,
) -> None:
    """Run a job locally to the end (restarts a FAILED/STOPPED instance with these parameters)."""
    _run_manifest(
        manifest, param, ctx, job, db, as_json, no_progress, deadline, next_instance=False
    )


def start_next(
    manifest: Annotated[str, typer.Argument(help="BatchJob YAML, a .py file or a module.")],
    param: Params = None,
    ctx: Ctx = None,
    job: JobName = None,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    no_progress: NoProgress = False,
    deadline: Deadline = None,
) -> None:
    """Run a new instance of a job that has an incrementer (next run.id)."""
    _run_manifest(manifest, param, ctx, job, db, as_json, no_progress, deadline, next_instance=True)


def _run_manifest(
    manifest: str,
    param: list[str] | None,
    ctx: list[str] | None,
    job: str | None,
    db: str,
    as_json: bool,
    no_progress: bool,
    deadline: float | None,
    *,
    next_instance: bool,
) -> None:
    entry = JobRegistry().load(manifest).only(job)
    params = parse_cli_params(param or [])
    context = parse_cli_context(ctx or [])

    def launch(op: JobOperator, launched: Launched) -> JobExecution:
        start = op.start_next_instance if next_instance else op.start
        return start(entry, params, on_launched=launched, context=context)

    _execute(db, as_json, no_progress, launch, deadline)


def restart(
    target: Target,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    no_progress: NoProgress = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    deadline: Deadline = None,
) -> None:
    """Restart a FAILED or STOPPED execution from its last checkpoint.

    With a BatchExecution NAME (or --namespace/--context), bump its spec.restart."""
    in_cluster = cluster_for(target, namespace, context, kubeconfig)
    if in_cluster is not None:
        if deadline is not None:
            raise typer.BadParameter(
                "a BatchExecution's deadline is its spec.deadlineSeconds", param_hint="--deadline"
            )
        return report_object(in_cluster.restart(target), as_json)
    restarted = id_of(target)
    _execute(
        db,
        as_json,
        no_progress,
        lambda op, launched: op.restart(restarted, on_launched=launched),
        deadline,
    )
