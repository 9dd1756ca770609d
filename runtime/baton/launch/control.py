"""Stop, abandon and recover: state changes asked of one existing execution.

Whether its process is gone can be told only on the host that ran it (see
:mod:`baton.executors.owner`); elsewhere the caller must ``force`` a recovery.
"""

from __future__ import annotations

from collections.abc import Callable

from baton.core.entities import JobExecution
from baton.core.errors import JobExecutionAlreadyRunning, UnexpectedJobExecutionState
from baton.core.status import BatchStatus, can_abandon, can_stop
from baton.executors.owner import owner_alive
from baton.flow.engine import compensates_on_abandon
from baton.flow.state import ABANDONED, FlowState
from baton.repository import JobRepository
from baton.spec.snapshot import job_of

Run = Callable[[JobExecution], JobExecution]
"""Runs an execution to a terminal state (the local executor)."""


def stop(repo: JobRepository, execution_id: int) -> JobExecution:
    """Ask a running execution to stop at its next chunk boundary (STOPPING).
    An execution whose process is gone is marked STOPPED at once."""
    execution = repo.get_execution(execution_id)
    if execution.status is BatchStatus.STOPPING:
        return execution
    if not can_stop(execution.status):
        raise UnexpectedJobExecutionState(
            f"cannot stop execution {execution_id}: it is {execution.status.value}, not running"
        )
    if owner_alive(execution.owner) is False:
        return repo.end_orphaned(
            execution, BatchStatus.STOPPED, "stopped; its process was gone", "stop"
        )
    return repo.transition(
        execution_id,
        BatchStatus.STOPPING,
        action="stop",
    )


def abandon(repo: JobRepository, execution_id: int, run: Run) -> JobExecution:
    """Mark a stopped or failed execution ABANDONED: its instance never restarts. With
    ``compensateOnAbandon`` its saga runs first (through ``run``)."""
    execution = repo.get_execution(execution_id)
    if execution.status.running:
        recover(repo, execution_id, quiet=True)
        execution = repo.get_execution(execution_id)
    if not can_abandon(execution.status):
        hint = "; stop it first" if execution.status.running else ""
        raise UnexpectedJobExecutionState(
            f"cannot abandon execution {execution_id}: it is {execution.status.value}{hint}"
        )
    if compensations_due(repo, execution):
        compensating = repo.transition(
            execution_id,
            BatchStatus.COMPENSATING,
            action="abandon",
            exit_code=ABANDONED,
            description="abandoned; compensating",
        )
        return run(compensating)
    return repo.transition(
        execution_id,
        BatchStatus.ABANDONED,
        action="abandon",
        exit_code=ABANDONED,
        end=True,
    )


def compensations_due(repo: JobRepository, execution: JobExecution) -> bool:
    """Whether abandoning ``execution`` runs compensations first."""
    state = FlowState.of(
        execution,
        repo.step_executions(execution.id),
        {k: s.status for k, s in repo.previous_steps(execution).items()},
        repo.partition_counts(execution.instance_id),
    )
    return compensates_on_abandon(job_of(execution).spec, state)


def recover(
    repo: JobRepository, execution_id: int, *, force: bool = False, quiet: bool = False
) -> JobExecution:
    """Mark an execution FAILED whose process died while it ran (left STARTED), so it
    can be restarted. ``force`` when its process ran on another host; ``quiet``: return
    the execution unchanged instead of raising when it cannot be recovered."""
    execution = repo.get_execution(execution_id)
    if not execution.status.running:
        if quiet:
            return execution
        raise UnexpectedJobExecutionState(
            f"cannot recover execution {execution_id}: it is {execution.status.value}, not running"
        )
    alive = owner_alive(execution.owner)
    if execution.owner is None and execution.status is BatchStatus.STARTING:
        alive = None
    if alive is True or (alive is None and not force):
        if quiet:
            return execution
        where = f"owned by {execution.owner}" if execution.owner else "not started here"
        raise JobExecutionAlreadyRunning(
            f"execution {execution_id} is {execution.status.value} ({where}); "
            + ("its process is alive" if alive else "use --force if its process is gone")
        )
    return repo.end_orphaned(
        execution, BatchStatus.FAILED, "recovered: the process running it was gone", "recover"
    )


def recover_dead_last(repo: JobRepository, job_name: str, key: str) -> None:
    """Before a launch: the instance's last execution, left running by a process that
    is gone, becomes FAILED so the restart rules see what really happened."""
    last = repo.last_execution(job_name, key)
    if last is not None and last.status.running:
        recover(repo, last.id, quiet=True)
