"""Executions as ``baton executions`` lists them: dead local ones recovered first."""

from __future__ import annotations

from dataclasses import dataclass, field

from baton.core.entities import JobExecution
from baton.core.errors import BatonError
from baton.executors.owner import owner_alive
from baton.explore.explorer import JobExplorer
from baton.launch.control import recover
from baton.repository import JobRepository


@dataclass
class Listing:
    """Executions as a listing shows them: each with whether its process is gone
    (True: it ran on this host and is gone; False: alive; None: not running, or it
    runs elsewhere and cannot be told from here), and those the listing recovered."""

    rows: list[tuple[JobExecution, bool | None]] = field(default_factory=list)
    recovered: list[JobExecution] = field(default_factory=list)


def list_executions(
    repo: JobRepository, job: str | None, *, running: bool, limit: int | None
) -> Listing:
    """Executions, newest first. One that the repository says is running but whose
    process ran on this host and is gone is recovered first (FAILED, as ``recover`` and
    ``restart`` do), so that ``running`` lists only what runs; if that write cannot be
    made (the database is busy, or the execution changed meanwhile), it is listed as
    found, its process marked gone."""
    listing = Listing()
    for execution in JobExplorer(repo).executions(job, running=running, limit=limit):
        gone = process_gone(execution)
        if gone:
            try:
                recovered = recover(repo, execution.id, quiet=True)
            except BatonError:  # busy, or changed meanwhile: list it as found
                recovered = execution
            if not recovered.status.running:
                listing.recovered.append(recovered)
                if running:
                    continue
                execution, gone = recovered, None
        listing.rows.append((execution, gone))
    return listing


def process_gone(execution: JobExecution) -> bool | None:
    """For a running execution: whether the process that runs it (on this host) is gone."""
    if not execution.status.running:
        return None
    alive = owner_alive(execution.owner)
    return None if alive is None else not alive
