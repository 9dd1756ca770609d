"""Admission: an execution waits (phase Queued) until its job's concurrency limits
(``maxRunning``, ``cooldownSeconds``) let it start. The only waiting of the local
executor that looks at the repository on a timer: it waits for other executions,
not for its own units."""

from __future__ import annotations

import logging
import threading

from baton.core.entities import JobExecution
from baton.core.status import BatchStatus
from baton.executors.owner import owner_alive, this_owner
from baton.repository import JobRepository
from baton.spec.model import BatchJob

log = logging.getLogger("baton.executor")


def admit(
    repo: JobRepository,
    execution: JobExecution,
    job: BatchJob,
    signalled: threading.Event,
    poll: float,
) -> JobExecution:
    """STARTING → STARTED, once the job's concurrency limits allow (phase Queued)."""
    limits = job.spec.concurrency
    if limits is None:
        return repo.transition(
            execution.id,
            BatchStatus.STARTED,
            action="start",
            start=True,
            owner=this_owner(),
        )
    announced = False
    while not repo.admit(
        execution,
        max_running=limits.max_running,
        cooldown_seconds=limits.cooldown_seconds,
        waiting_alive=lambda e: owner_alive(e.owner) is not False,
        owner=this_owner(),
    ):
        current = repo.get_execution(execution.id)
        if current.status is BatchStatus.STOPPING or signalled.is_set():
            return repo.transition(
                execution.id,
                BatchStatus.STOPPED,
                action="stop",
                exit_code="STOPPED",
                description="stopped while queued",
                end=True,
            )
        if not announced:
            log.warning(
                "execution %s is queued (maxRunning %s, cooldown %gs)",
                execution.id,
                limits.max_running,
                limits.cooldown_seconds,
            )
            announced = True
        signalled.wait(poll)  # a signal ends the wait
    return repo.get_execution(execution.id)
