"""Read-only commands: ``jobs``, ``instances``, ``executions``, ``show``, ``skips``,
``results``, ``history`` and ``steps``. Each builds its rows with :mod:`baton.cli.render`
and prints them as JSON or as the matching table of :mod:`baton.cli.tables`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

import baton.cli.tables as tables
from baton.cli.cluster import AllNamespaces, cluster_for, list_cluster_executions
from baton.cli.options import AsJson, Context, Db, ExecutionId, JobArg, Kubeconfig, Namespace
from baton.cli.render import execution_row, history_row, instance_row, result_row, skip_row
from baton.cli.session import print_json, session
from baton.core.entities import JobExecution
from baton.core.status import UnitKind
from baton.explore.explorer import JobExplorer
from baton.explore.views import execution_view, step_view
from baton.launch.operator import JobOperator
from baton.repository.engine import DEFAULT_URL


def _explorer(db: str) -> JobExplorer:
    return JobExplorer(session.repository(db))


def _emit(
    rows: list[dict[str, Any]], as_json: bool, table: Callable[[list[dict[str, Any]]], Table]
) -> None:
    """The rows as JSON, else as ``table(rows)``."""
    if as_json:
        print_json(rows)
    else:
        session.out.print(table(rows))


def jobs(db: Db = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Jobs known to the repository."""
    _emit(_explorer(db).job_summaries(), as_json, tables.jobs_table)


def instances(job: JobArg, db: Db = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Instances of a job (one per set of identifying parameters)."""
    explorer = _explorer(db)
    found = explorer.instances(job)
    last: dict[int, JobExecution] = {}
    for e in explorer.executions(job):  # newest first
        last.setdefault(e.instance_id, e)
    rows = [instance_row(i, last.get(i.id)) for i in found]
    _emit(rows, as_json, tables.instances_table)


def executions(
    job: Annotated[str | None, typer.Option("--job", "-j", help="Only this job.")] = None,
    running: Annotated[bool, typer.Option("--running", help="Only running ones.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    all_namespaces: AllNamespaces = False,
) -> None:
    """Job executions, newest first (BatchExecutions with --namespace/--context/-A)."""
    in_cluster = cluster_for(None, namespace, context, kubeconfig, all_namespaces=all_namespaces)
    if in_cluster is not None:
        return list_cluster_executions(in_cluster, job, running, limit, as_json)
    listing = JobOperator(session.repository(db)).list_executions(job, running=running, limit=limit)
    for e in listing.recovered:
        session.err.print(
            f"note: execution {e.id} was left running by a process that is gone: "
            f"recovered as {e.status.value}",
            highlight=False,
            markup=False,
        )
    rows = [execution_row(e, gone) for e, gone in listing.rows]
    _emit(rows, as_json, tables.executions_table)


def show(execution_id: ExecutionId, db: Db = DEFAULT_URL, as_json: AsJson = False) -> None:
    """One execution with its steps and their counts."""
    explorer = _explorer(db)
    execution = explorer.execution(execution_id)
    view = execution_view(execution, explorer.step_executions(execution_id))
    if as_json:
        return print_json(view)
    out = session.out
    out.print(
        f"Execution [bold]{view['id']}[/] of [bold]{view['job']}[/] "
        f"(instance {view['instanceId']}, attempt {view['attempt']}): "
        f"{tables.styled(view['status'])}",
        highlight=False,
    )
    out.print(f"parameters: {tables.params_text(view['parameters']) or '-'}", highlight=False)
    if view["exitDescription"]:
        out.print(f"exit: {view['exitDescription'].splitlines()[0]}", highlight=False)
    out.print(tables.steps_table(view["steps"]))


def skips(execution_id: ExecutionId, db: Db = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Items skipped by an execution, with the error that made each one skip."""
    rows = [skip_row(s) for s in _explorer(db).skipped_items(execution_id)]
    _emit(rows, as_json, tables.skips_table)


def results(execution_id: ExecutionId, db: Db = DEFAULT_URL, as_json: AsJson = False) -> None:
    """Results the steps (and partitions) of an execution returned."""
    units = _explorer(db).step_executions(execution_id)
    rows = [result_row(s) for s in units if s.kind == UnitKind.STEP]
    _emit(rows, as_json, tables.results_table)


def history(
    job: JobArg,
    limit: Annotated[int, typer.Option(help="Executions to look at, newest first.")] = 20,
    db: Db = DEFAULT_URL,
    as_json: AsJson = False,
) -> None:
    """Where each step of a job ran: worker (pod or host), times, memory, incarnations."""
    explorer = _explorer(db)
    explorer.instances(job)  # unknown job → clear error
    rows = [history_row(e, s) for e, s in explorer.repository.history(job, limit=limit)]
    _emit(rows, as_json, tables.history_table)


def steps(execution_id: ExecutionId, db: Db = DEFAULT_URL) -> None:
    """Step executions of an execution as JSON (all fields)."""
    print_json([step_view(s) for s in _explorer(db).step_executions(execution_id)])
