"""Changing the state of an execution that exists: ``stop``, ``abandon`` (both also in
a cluster) and ``recover``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from baton.cli.cluster import cluster_for, report_object
from baton.cli.options import (
    AsJson,
    Context,
    Db,
    ExecutionId,
    Kubeconfig,
    Namespace,
    Target,
    id_of,
)
from baton.cli.session import print_json, session
from baton.cli.tables import styled
from baton.core.entities import JobExecution
from baton.core.status import ExitCode
from baton.explore.views import execution_view
from baton.launch.operator import JobOperator
from baton.repository.engine import DEFAULT_URL


def report(execution: JobExecution, as_json: bool) -> None:
    """The execution after the change: its view without steps, else id and status."""
    if as_json:
        print_json(execution_view(execution, None))
    else:
        session.out.print(
            f"Execution {execution.id} {styled(execution.status.value)}", highlight=False
        )


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
    in_cluster = cluster_for(target, namespace, context, kubeconfig)
    if in_cluster is not None:
        return report_object(in_cluster.stop(target), as_json)
    stopped = id_of(target)
    repo = session.repository(db)
    execution = JobOperator(repo).stop(stopped)
    deadline = time.monotonic() + timeout
    while wait and execution.status.running and time.monotonic() < deadline:
        time.sleep(0.2)
        execution = repo.get_execution(stopped)
    report(execution, as_json)
    if wait and execution.status.running:
        session.err.print(
            f"error: execution {stopped} still {execution.status.value} after {timeout:g}s"
        )
        raise typer.Exit(ExitCode.FAILED)


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
    in_cluster = cluster_for(target, namespace, context, kubeconfig)
    if in_cluster is not None:
        return report_object(in_cluster.abandon(target), as_json)
    report(JobOperator(session.repository(db)).abandon(id_of(target)), as_json)


def recover(
    execution_id: ExecutionId,
    db: Db = DEFAULT_URL,
    force: Annotated[bool, typer.Option(help="Also when it ran on another host.")] = False,
    as_json: AsJson = False,
) -> None:
    """Mark an execution FAILED whose process died while it was running."""
    report(JobOperator(session.repository(db)).recover(execution_id, force=force), as_json)
