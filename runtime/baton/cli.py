"""The ``baton`` command line: a thin shell over JobOperator / JobExplorer.

Every failure a user can cause ends in one line on stderr and an exit code from
:class:`baton.core.status.ExitCode`; every listing is also available as ``--json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from baton.core.errors import BatonError, NoSuchExecution
from baton.core.status import BatchStatus, ExitCode
from baton.ops import JobExplorer, JobOperator, step_summary, summarize
from baton.registry import JobRegistry
from baton.repository import (
    DEFAULT_URL,
    JobExecution,
    JobRepository,
    StepExecution,
    redact,
)
from baton.spec.model import INT_MAX, parse_cli_context, parse_cli_params

try:  # Typer >= 0.25 vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on the real click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore

app = typer.Typer(
    name="baton",
    help="Run batch jobs with checkpoints and restarts, locally or on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
PIPE_WIDTH = 100_000  # piped output is never wrapped: as wide as any line can be


def _console(stderr: bool = False) -> Console:
    """Rich's width on a terminal; a pipe or a file gets lines that are never wrapped."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


out = _console()
err = _console(stderr=True)


def _known_id(value: int) -> int:
    """An execution id the repository can hold (a BIGINT); any other cannot exist."""
    if not 0 < value <= INT_MAX:
        raise NoSuchExecution(f"no job execution with id {value}")
    return value


def _execution_id(target: str) -> int:
    return _known_id(int(target))


Db = Annotated[
    str,
    typer.Option(
        "--db", envvar="BATON_DB_URL", help="Job repository URL (sqlite:/// or postgresql://)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Params = Annotated[
    list[str] | None, typer.Option("-p", "--param", help="Job parameter NAME=VALUE (repeatable).")
]
Ctx = Annotated[
    list[str] | None,
    typer.Option(
        "--ctx",
        help="Initial job context KEY=VALUE (repeatable; VALUE as JSON when it parses).",
    ),
]
JobName = Annotated[
    str | None, typer.Option("--job", "-j", help="Job to run when the file defines several.")
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No live progress bar.")]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Cluster: namespace of the BatchExecution."),
]
Context = Annotated[
    str | None, typer.Option("--context", help="Cluster: kubeconfig context to use.")
]
Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="Cluster: kubeconfig file (else $KUBECONFIG).")
]
Target = Annotated[
    str, typer.Argument(metavar="ID|NAME", help="Execution id, or a BatchExecution name.")
]
ExecutionId = Annotated[int, typer.Argument(metavar="ID", callback=_known_id)]

STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "STOPPED": "yellow",
    "STOPPING": "yellow",
    "STARTED": "cyan",
    "STARTING": "cyan",
    "ABANDONED": "magenta",
    "UNKNOWN": "red",
}


_opened: list[JobRepository] = []  # disposed when the command ends (run_cli)


def _repo(db: str) -> JobRepository:
    """The repository for a command a person waits for (shorter SQLite busy wait)."""
    repo = JobRepository(db, interactive=True)
    _opened.append(repo)
    return repo


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


# ---------------------------------------------------------------- progress


class ProgressView:
    """A live bar per step, fed by the executor's polling of the repository."""

    def __init__(self, console: Console, enabled: bool):
        self.enabled = enabled
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
            name = s.step_name if s.partition is None else f"{s.step_name}[{s.partition}]"
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
                "status": _styled(s.status.value),
            }
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(name, total=total, **fields)
            self.progress.update(self.tasks[key], completed=done, total=total, **fields)


# ---------------------------------------------------------------- running


def _execute(
    db: str,
    as_json: bool,
    no_progress: bool,
    launch: Any,
) -> None:
    """Shared by run/start-next/restart: print the id, show progress, map the exit code."""
    repo = JobRepository(db)  # the executor: a step's wait for the write lock
    _opened.append(repo)
    info = err if as_json else out
    view = ProgressView(info, enabled=not no_progress and not as_json)

    def launched(e: JobExecution) -> None:
        params = " ".join(f"{k}={v}" for k, v in e.parameters.as_json().items())
        info.print(
            f"Execution [bold]{e.id}[/] of job [bold]{e.job_name}[/] "
            f"(instance {e.instance_id}, attempt {e.attempt}) {params}".rstrip(),
            highlight=False,
        )

    operator = JobOperator(repo, on_tick=view.tick)
    with view:
        final: JobExecution = launch(operator, launched)
        view.tick(final, repo.step_executions(final.id))
    steps = repo.step_executions(final.id)
    if as_json:
        _print_json(summarize(final, steps))
    else:
        line = f"Execution {final.id} {_styled(final.status.value)}"
        if final.exit_description:
            line += f": {final.exit_description.splitlines()[0]}"
        info.print(line, highlight=False)
    raise typer.Exit(ExitCode.for_status(final.status))


def _registry(target: str) -> JobRegistry:
    return JobRegistry().load(target)


@app.command()
def run(
    manifest: Annotated[
        str, typer.Argument(help="BatchJob YAML, a .py file or a module with @baton.job.")
    ],
    param: Params = None,
    ctx: Ctx = None,
    job: JobName = None,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    no_progress: NoProgress = False,
) -> None:
    """Run a job locally to the end (restarts a FAILED/STOPPED instance with these parameters)."""
    _run_manifest(manifest, param, ctx, job, db, as_json, no_progress, next_instance=False)


@app.command("start-next")
def start_next(
    manifest: Annotated[str, typer.Argument(help="BatchJob YAML, a .py file or a module.")],
    param: Params = None,
    ctx: Ctx = None,
    job: JobName = None,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    no_progress: NoProgress = False,
) -> None:
    """Run a new instance of a job that has an incrementer (next run.id)."""
    _run_manifest(manifest, param, ctx, job, db, as_json, no_progress, next_instance=True)


def _run_manifest(
    manifest: str,
    param: list[str] | None,
    ctx: list[str] | None,
    job: str | None,
    db: str,
    as_json: bool,
    no_progress: bool,
    *,
    next_instance: bool,
) -> None:
    entry = _registry(manifest).only(job)
    params = parse_cli_params(param or [])
    context = parse_cli_context(ctx or [])

    def launch(op: JobOperator, launched: Any) -> JobExecution:
        start = op.start_next_instance if next_instance else op.start
        return start(entry, params, on_launched=launched, context=context)

    _execute(db, as_json, no_progress, launch)


@app.command()
def restart(
    target: Target,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    no_progress: NoProgress = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Restart a FAILED or STOPPED execution from its last checkpoint.

    With a BatchExecution NAME (or --namespace/--context), bump its spec.restart."""
    cluster = _cluster(target, namespace, context, kubeconfig)
    if cluster is not None:
        return _cluster_report(cluster.restart(target), as_json)
    execution_id = _execution_id(target)
    _execute(
        db,
        as_json,
        no_progress,
        lambda op, launched: op.restart(execution_id, on_launched=launched),
    )


@app.command()
def stop(
    target: Target,
    db: Db = DEFAULT_URL,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it has stopped.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 300,
    as_json: AsJson = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Ask a running execution to stop after its current chunk.

    With a BatchExecution NAME (or --namespace/--context), patch spec.stop."""
    import time

    cluster = _cluster(target, namespace, context, kubeconfig)
    if cluster is not None:
        return _cluster_report(cluster.stop(target), as_json)
    execution_id = _execution_id(target)
    repo = _repo(db)
    execution = JobOperator(repo).stop(execution_id)
    deadline = time.monotonic() + timeout
    while wait and execution.status.running and time.monotonic() < deadline:
        time.sleep(0.2)
        execution = repo.get_execution(execution_id)
    _report(execution, as_json)
    if wait and execution.status.running:
        err.print(
            f"error: execution {execution_id} still {execution.status.value} after {timeout:g}s"
        )
        raise typer.Exit(ExitCode.FAILED)


@app.command()
def abandon(
    target: Target,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Mark a STOPPED or FAILED execution ABANDONED; its instance can never restart.

    With a BatchExecution NAME (or --namespace/--context), patch spec.abandon."""
    cluster = _cluster(target, namespace, context, kubeconfig)
    if cluster is not None:
        return _cluster_report(cluster.abandon(target), as_json)
    _report(JobOperator(_repo(db)).abandon(_execution_id(target)), as_json)


@app.command()
def recover(
    execution_id: ExecutionId,
    db: Db = DEFAULT_URL,
    force: Annotated[bool, typer.Option(help="Also when it ran on another host.")] = False,
    as_json: AsJson = False,
) -> None:
    """Mark an execution FAILED whose process died while it was running."""
    _report(JobOperator(_repo(db)).recover(execution_id, force=force), as_json)


def _cluster(
    target: str | None, namespace: str | None, context: str | None, kubeconfig: str | None
) -> Any:
    """The cluster operator when the command is about a BatchExecution: a NAME rather
    than a numeric id, or any of --namespace/--context/--kubeconfig given."""
    numeric = target is not None and re.fullmatch("[0-9]+", target) is not None
    if numeric and not (namespace or context or kubeconfig):
        return None
    if target is None and not (namespace or context or kubeconfig):
        return None
    from baton_operator.k8s.client import ClusterJobOperator

    return ClusterJobOperator(namespace or "default", kubeconfig=kubeconfig, context=context)


def _cluster_report(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        return _print_json(obj)
    st = obj.get("status") or {}
    out.print(
        f"batchexecution/{obj['metadata']['name']} {st.get('phase') or 'Pending'}", highlight=False
    )


@app.command("start")
def start_in_cluster(
    job: Annotated[str, typer.Argument(metavar="JOB", help="BatchJob name in the cluster.")],
    param: Params = None,
    ctx: Ctx = None,
    name: Annotated[str | None, typer.Option(help="BatchExecution name.")] = None,
    working_dir: Annotated[
        str | None, typer.Option(help="Directory of the job's code in the image.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for a terminal phase.")] = False,
    as_json: AsJson = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Create a BatchExecution of JOB in the cluster (the operator runs it)."""
    from baton_operator.k8s.client import ClusterJobOperator

    op = ClusterJobOperator(namespace or "default", kubeconfig=kubeconfig, context=context)
    created = op.start(
        job,
        parse_cli_params(param or []),
        name=name,
        working_dir=working_dir,
        context=parse_cli_context(ctx or []),
    )
    if wait:
        created = op.wait(created["metadata"]["name"])
    if as_json:
        _print_json(created)
    else:
        _cluster_report(created, False) if wait else out.print(
            f"batchexecution/{created['metadata']['name']} created", highlight=False
        )
    if wait and (created.get("status") or {}).get("phase") != "Completed":
        raise typer.Exit(ExitCode.FAILED)


def _report(execution: JobExecution, as_json: bool) -> None:
    if as_json:
        _print_json(summarize(execution, []) | {"steps": None})
    else:
        out.print(f"Execution {execution.id} {_styled(execution.status.value)}", highlight=False)


# ---------------------------------------------------------------- listings


@app.command()
def jobs(db: Db = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Jobs known to the repository."""
    rows = JobExplorer(_repo(db)).job_summaries()
    if as_json:
        return _print_json(rows)
    t = Table("Job", "Instances", "Executions", "Last execution", "Last status")
    for r in rows:
        t.add_row(
            r["job"],
            str(r["instances"]),
            str(r["executions"]),
            str(r["lastExecutionId"] or ""),
            _styled(r["lastStatus"] or ""),
        )
    out.print(t)


@app.command()
def instances(
    job: Annotated[str, typer.Argument(metavar="JOB")],
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Instances of a job (one per set of identifying parameters)."""
    explorer = JobExplorer(_repo(db))
    found = explorer.instances(job)
    last: dict[int, JobExecution] = {}
    for e in explorer.executions(job):  # newest first
        last.setdefault(e.instance_id, e)
    rows: list[dict[str, Any]] = [
        {
            "id": i.id,
            "job": i.job_name,
            "key": i.job_key,
            "createTime": i.created_at.isoformat(),
            "parameters": last[i.id].parameters.as_json() if i.id in last else {},
            "lastExecutionId": last[i.id].id if i.id in last else None,
            "lastStatus": last[i.id].status.value if i.id in last else None,
        }
        for i in found
    ]
    if as_json:
        return _print_json(rows)
    t = Table("Instance", "Parameters", "Last execution", "Last status", "Created")
    for r in rows:
        t.add_row(
            str(r["id"]),
            _params_text(r["parameters"]),
            str(r["lastExecutionId"] or ""),
            _styled(r["lastStatus"] or ""),
            r["createTime"][:19],
        )
    out.print(t)


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _execution_row(e: JobExecution) -> dict[str, Any]:
    return {
        "id": e.id,
        "instanceId": e.instance_id,
        "job": e.job_name,
        "status": e.status.value,
        "attempt": e.attempt,
        "exitCode": e.exit_code,
        "exitDescription": e.exit_description.split("\n", 1)[0],
        "parameters": e.parameters.as_json(),
        "startTime": e.start_time.isoformat() if e.start_time else None,
        "endTime": e.end_time.isoformat() if e.end_time else None,
    }


@app.command()
def executions(
    job: Annotated[str | None, typer.Option("--job", "-j", help="Only this job.")] = None,
    running: Annotated[bool, typer.Option("--running", help="Only running ones.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Job executions, newest first (BatchExecutions with --namespace/--context)."""
    cluster = _cluster(None, namespace, context, kubeconfig)
    if cluster is not None:
        found = cluster.executions(job)
        if running:
            found = [
                o
                for o in found
                if (o.get("status") or {}).get("phase")
                in ("Pending", "Queued", "Running", "Stopping", "Compensating", None)
            ]
        if as_json:
            return _print_json(found[-limit:])
        from baton_operator.k8s.client import executions_table

        return out.print(executions_table(found[-limit:]))
    listing = JobOperator(_repo(db)).list_executions(job, running=running, limit=limit)
    for e in listing.recovered:
        err.print(
            f"note: execution {e.id} was left running by a process that is gone: "
            f"recovered as {e.status.value}",
            highlight=False,
            markup=False,
        )
    rows = [_execution_row(e) | {"processGone": gone} for e, gone in listing.rows]
    if as_json:
        return _print_json(rows)
    t = Table("ID", "Job", "Instance", "Attempt", "Status", "Parameters", "Started", "Exit")
    for r in rows:
        t.add_row(
            str(r["id"]),
            r["job"],
            str(r["instanceId"]),
            str(r["attempt"]),
            _styled(r["status"]) + (" (process gone)" if r["processGone"] else ""),
            _params_text(r["parameters"]),
            (r["startTime"] or "")[:19],
            r["exitDescription"][:60],
        )
    out.print(t)


@app.command()
def show(
    execution_id: ExecutionId,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """One execution with its steps and their counts."""
    summary = JobExplorer(_repo(db)).summary(execution_id)
    if as_json:
        return _print_json(summary)
    out.print(
        f"Execution [bold]{summary['id']}[/] of [bold]{summary['job']}[/] "
        f"(instance {summary['instanceId']}, attempt {summary['attempt']}): "
        f"{_styled(summary['status'])}",
        highlight=False,
    )
    out.print(f"parameters: {_params_text(summary['parameters']) or '-'}", highlight=False)
    if summary["exitDescription"]:
        out.print(f"exit: {summary['exitDescription'].splitlines()[0]}", highlight=False)
    t = Table(
        "Step",
        "Status",
        "Read",
        "Written",
        "Filtered",
        "Skipped",
        "Commits",
        "Rollbacks",
        "Peak MiB",
        "Exit",
    )
    for s in summary["steps"]:
        name = s["name"] if s["partition"] is None else f"{s['name']}[{s['partition']}]"
        mem = f"{s['peakMemoryKb'] / 1024:.0f}" if s["peakMemoryKb"] else ""
        t.add_row(
            name,
            _styled(s["status"]),
            *(
                str(s[k])
                for k in (
                    "readCount",
                    "writeCount",
                    "filterCount",
                    "skipCount",
                    "commitCount",
                    "rollbackCount",
                )
            ),
            mem,
            (s["exitDescription"] or "").split("\n", 1)[0][:60],
        )
    out.print(t)


@app.command()
def skips(
    execution_id: ExecutionId,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Items skipped by an execution, with the error that made each one skip."""
    rows = [
        {
            "id": s.id,
            "step": s.step_name,
            "partition": s.partition,
            "phase": s.phase,
            "item": s.item,
            "error": s.error,
        }
        for s in JobExplorer(_repo(db)).skipped_items(execution_id)
    ]
    if as_json:
        return _print_json(rows)
    t = Table("Step", "Phase", "Item", "Error")
    for r in rows:
        t.add_row(r["step"], r["phase"], json.dumps(r["item"], default=str)[:80], r["error"])
    out.print(t)


@app.command(hidden=True)
def step(
    execution_id: ExecutionId,
    name: Annotated[str, typer.Argument(metavar="STEP")],
    partition: Annotated[int | None, typer.Option(help="Partition index.")] = None,
    partition_from_index: Annotated[
        bool,
        typer.Option(help="Indexed Job pod: run partition BATON_PARTITIONS[JOB_COMPLETION_INDEX]."),
    ] = False,
    kind: Annotated[str, typer.Option(help="step, compensation or callback.")] = "step",
    db: Db = DEFAULT_URL,
) -> None:
    """Run one unit of an execution (what the local executor and pods run).

    The ``baton`` script runs ``baton step`` without loading this CLI
    (baton.step.entry); this command is the same for ``python -m baton step``."""
    from baton.step.entry import run_unit

    code = run_unit(
        db, execution_id, name, partition, partition_from_index=partition_from_index, kind=kind
    )
    raise typer.Exit(code)


@app.command()
def results(
    execution_id: ExecutionId,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Results the steps (and partitions) of an execution returned."""
    explorer = JobExplorer(_repo(db))
    rows = [
        {
            "step": s.step_name,
            "partition": s.partition,
            "status": s.status.value,
            "result": s.result,
        }
        for s in explorer.step_executions(execution_id)
        if s.kind == "step"
    ]
    if as_json:
        return _print_json(rows)
    t = Table("Step", "Status", "Result")
    for r in rows:
        name = r["step"] if r["partition"] is None else f"{r['step']}[{r['partition']}]"
        t.add_row(name, _styled(r["status"]), json.dumps(r["result"], default=str)[:100])
    out.print(t)


@app.command()
def history(
    job: Annotated[str, typer.Argument(metavar="JOB")],
    limit: Annotated[int, typer.Option(help="Executions to look at, newest first.")] = 20,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Where each step of a job ran: worker (pod or host), times, memory, incarnations."""
    explorer = JobExplorer(_repo(db))
    explorer.instances(job)  # unknown job → clear error
    rows: list[dict[str, Any]] = [
        {
            "execution": e.id,
            "step": s.step_name,
            "partition": s.partition,
            "kind": s.kind,
            "status": s.status.value,
            "worker": s.worker,
            "startTime": s.start_time.isoformat(),
            "endTime": s.end_time.isoformat() if s.end_time else None,
            "durationSeconds": round((s.end_time - s.start_time).total_seconds(), 3)
            if s.end_time
            else None,
            "peakMemoryKb": s.peak_memory_kb,
            "incarnations": s.incarnations,
        }
        for e, s in explorer.repository.history(job, limit=limit)
    ]
    if as_json:
        return _print_json(rows)
    t = Table(
        "Exec", "Step", "Kind", "Status", "Worker", "Started", "Seconds", "Peak MiB", "Incarnations"
    )
    for r in rows:
        name = r["step"] if r["partition"] is None else f"{r['step']}[{r['partition']}]"
        mem = f"{r['peakMemoryKb'] / 1024:.0f}" if r["peakMemoryKb"] else ""
        t.add_row(
            str(r["execution"]),
            name,
            r["kind"],
            _styled(r["status"]),
            r["worker"] or "",
            r["startTime"][:19],
            str(r["durationSeconds"] or ""),
            mem,
            str(r["incarnations"]),
        )
    out.print(t)


@app.command()
def steps(
    execution_id: ExecutionId,
    db: Db = DEFAULT_URL,
) -> None:
    """Step executions of an execution as JSON (all fields)."""
    repo = _repo(db)
    JobExplorer(repo).execution(execution_id)
    _print_json([step_summary(s) for s in repo.step_executions(execution_id)])


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return its exit code (the console script, ``python -m
    baton`` and in-process tests all come here). Every error is one line on stderr:
    ``error: <what>: <why>`` with its exit code; usage errors exit 2; anything
    unexpected is ``error: internal error: ...`` with exit 1 (BATON_DEBUG=1 re-raises it
    for the traceback)."""
    global out, err
    out, err = _console(), _console(stderr=True)
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = command.main(args=args, prog_name="baton", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except NoArgsIsHelpError as e:  # bare `baton`: the help (Rich has printed it)
        if e.format_message().strip():
            e.show()
        return int(ExitCode.USAGE)
    except ClickException as e:
        where = e.ctx.command_path if isinstance(e, UsageError) and e.ctx else "baton"
        hint = f" (see '{where} --help')" if isinstance(e, UsageError) else ""
        return _fail(f"{where}: {e.format_message()}{hint}", e.exit_code)
    except BatonError as e:
        return _fail(str(e), e.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        return _fail("interrupted", ExitCode.STOPPED)
    except BrokenPipeError:  # `baton executions | head`: the reader left; no traceback
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - outlives this frame on purpose
        return int(ExitCode.FAILED)
    except Exception as e:
        if os.environ.get("BATON_DEBUG"):
            raise
        return _fail(
            f"internal error: {type(e).__name__}: {e} (BATON_DEBUG=1 shows the traceback)",
            ExitCode.FAILED,
        )
    finally:
        while _opened:
            _opened.pop().dispose()


def _fail(message: str, code: int) -> int:
    """Write ``error: message`` as exactly one line, whatever the message holds (and
    never a password: an unexpected error may quote a database URL)."""
    line = redact(re.sub(r"\s*[\r\n]+\s*", " ", message).strip())
    line = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()
    return int(code)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_cli())


if __name__ == "__main__":  # pragma: no cover
    main()
