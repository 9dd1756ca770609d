"""The commands that act on BatchExecutions in a cluster (through
:class:`baton_operator.k8s.client.ClusterJobOperator`): ``baton start`` and the cluster
forms of ``stop``/``restart``/``abandon``/``executions``. The Kubernetes client is
imported only when a command is about a cluster, so local commands never load it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baton.cli.options import (
    AsJson,
    Context,
    Ctx,
    Kubeconfig,
    Namespace,
    Params,
    parse_cli_context,
    parse_cli_params,
)
from baton.cli.session import print_json, session
from baton.core.status import ExitCode

if TYPE_CHECKING:
    from baton_operator.k8s.client import ClusterJobOperator

# phases `executions --running` lists (None: the operator has not seen it yet)
ACTIVE_PHASES = ("Pending", "Queued", "Running", "Stopping", "Compensating", None)

AllNamespaces = Annotated[
    bool,
    typer.Option("--all-namespaces", "-A", help="Cluster: BatchExecutions of every namespace."),
]


def cluster_for(
    target: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    *,
    all_namespaces: bool = False,
) -> ClusterJobOperator | None:
    """The cluster operator when the command is about a BatchExecution: a NAME rather
    than a numeric id, or any of --namespace/--context/--kubeconfig/-A given. Without
    --namespace it acts in the kubeconfig context's namespace, like kubectl."""
    chosen = bool(namespace or context or kubeconfig or all_namespaces)
    numeric = target is not None and re.fullmatch("[0-9]+", target) is not None
    if not chosen and (numeric or target is None):
        return None
    return _operator(namespace, context, kubeconfig, all_namespaces)


def _operator(
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    all_namespaces: bool = False,
) -> ClusterJobOperator:
    from baton_operator.k8s.client import ClusterJobOperator

    return ClusterJobOperator(
        namespace, kubeconfig=kubeconfig, context=context, all_namespaces=all_namespaces
    )


def report_object(obj: dict[str, Any], as_json: bool) -> None:
    """A BatchExecution after a command: the object as JSON, else its name and phase."""
    if as_json:
        return print_json(obj)
    st = obj.get("status") or {}
    session.out.print(
        f"batchexecution/{obj['metadata']['name']} {st.get('phase') or 'Pending'}", highlight=False
    )


def list_cluster_executions(
    cluster: ClusterJobOperator, job: str | None, running: bool, limit: int, as_json: bool
) -> None:
    """``baton executions`` in a cluster: its BatchExecutions, oldest first."""
    from baton_operator.k8s.client import executions_table

    found = cluster.executions(job)
    if running:
        found = [o for o in found if (o.get("status") or {}).get("phase") in ACTIVE_PHASES]
    if as_json:
        return print_json(found[-limit:])
    session.out.print(executions_table(found[-limit:], namespaces=cluster.all_namespaces))


def start(
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
    deadline: Annotated[
        int | None,
        typer.Option(
            "--deadline",
            metavar="SECONDS",
            min=1,
            help="spec.deadlineSeconds: Failed (DeadlineExceeded) if an attempt runs longer.",
        ),
    ] = None,
) -> None:
    """Create a BatchExecution of JOB in the cluster (the operator runs it)."""
    op = _operator(namespace, context, kubeconfig)
    created = op.start(
        job,
        parse_cli_params(param or []),
        name=name,
        working_dir=working_dir,
        context=parse_cli_context(ctx or []),
        deadline_seconds=deadline,
    )
    if wait:
        created = op.wait(created["metadata"]["name"])
    if as_json:
        print_json(created)
    elif wait:
        report_object(created, False)
    else:
        session.out.print(f"batchexecution/{created['metadata']['name']} created", highlight=False)
    if wait and (created.get("status") or {}).get("phase") != "Completed":
        raise typer.Exit(ExitCode.FAILED)
