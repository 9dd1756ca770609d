"""Whose execution is it: an operator only touches the BatchExecutions its own job
repository launched. Several releases can share a cluster, each with its own database;
``status.jobExecutionId`` is an id in the database that launched the execution, and
the same id in another database is another execution. Pure: the loop reads, this
decides."""

from __future__ import annotations

from baton.core.entities import JobExecution

from baton_operator.k8s.resources import ExecutionStatus
from baton_operator.reconcile.actions import Event

REASON = "ForeignExecution"


def foreign(
    status: ExecutionStatus,
    mine: str,
    *,
    job: str | None,
    uid: str | None = None,
    row: JobExecution | None = None,
) -> str | None:
    """Why the execution is not this repository's (None: it is, or nobody's yet).

    ``status.repositoryId`` says it when set. An execution launched before that field
    existed names only ``jobExecutionId``: it is this repository's only if the row of
    that id (``row``, read by the caller; None when there is none) runs the execution's
    job, under the instance the status names, launched for this very object (the
    owner tag ``k8s/<uid>/...``); ``job``/``uid`` None: not compared. No row at all is
    not foreign: the repository lost it (``outcomes.lost`` says so)."""
    if status.repository_id is not None:
        if status.repository_id == mine:
            return None
        return f"launched by job repository {status.repository_id}, not this one ({mine})"
    if status.execution_id is None or row is None:
        return None
    mismatch = []
    if job is not None and row.job_name != job:
        mismatch.append(f"runs job '{row.job_name}', not '{job}'")
    if status.instance_id is not None and row.instance_id != status.instance_id:
        mismatch.append(f"belongs to instance {row.instance_id}, not {status.instance_id}")
    owner = row.owner or ""
    if uid and owner.startswith("k8s/") and not owner.startswith(f"k8s/{uid}/"):
        mismatch.append("was launched for another BatchExecution")
    if not mismatch:
        return None
    return (
        f"JobExecution {status.execution_id} of this job repository ({mine}) "
        + "; ".join(mismatch)
        + ": the execution belongs to another repository"
    )


def needs_check(status: ExecutionStatus) -> bool:
    """Whether ``foreign`` needs the repository's row: a legacy status (no
    repositoryId) that names an execution."""
    return status.repository_id is None and status.execution_id is not None


def warning(why: str) -> Event:
    """The one event a foreign execution gets (the loop remembers it was sent)."""
    return Event("Warning", REASON, f"left alone by this operator: {why}")
