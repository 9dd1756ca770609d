"""Riding out a database failover: retry with exponential backoff for a time budget.

A managed PostgreSQL failover or restart drops every connection for 10-60 s. Step
processes and the local executor retry what failed with a connection error for up to
``BATON_DB_RETRY_SECONDS`` (default 120) before they give up with exit code 6. The
budget counts from the first failure and starts afresh after a success.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from baton.core.codec import decode_context
from baton.core.counts import Counts
from baton.core.errors import DatabaseUnavailable
from baton.core.status import BatchStatus
from baton.repository.schema import JobExecutionRow, StepExecutionRow

log = logging.getLogger("baton.repository")
T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 10.0
DEFAULT_BUDGET = 120.0


def retry_budget() -> float:
    """Seconds to keep retrying a database that cannot be reached (``BATON_DB_RETRY_SECONDS``)."""
    raw = os.environ.get("BATON_DB_RETRY_SECONDS", "")
    try:
        return max(float(raw), 0.0) if raw.strip() else DEFAULT_BUDGET
    except ValueError:
        return DEFAULT_BUDGET


def backoff(budget: float, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> Iterator[float]:
    """The waits between attempts: ``first`` doubling up to ``cap``, the last one cut
    so that they add up to exactly ``budget`` (nothing when the budget is 0)."""
    spent = 0.0
    delay = first
    while spent < budget:
        wait = min(delay, cap, budget - spent)
        yield wait
        spent += wait
        delay = min(delay * 2, cap)


def is_unavailable(e: BaseException) -> bool:
    """A failure of the connection (not of the statement): worth retrying elsewhen."""
    if isinstance(e, DatabaseUnavailable):
        return True
    if isinstance(e, DBAPIError):
        if e.connection_invalidated:
            return True
        if not isinstance(e, OperationalError | InterfaceError):
            return False  # a constraint, a type, bad SQL: the statement's own fault
        text = str(e.orig or e).lower()
        return any(
            s in text
            for s in (
                "connection",
                "could not connect",
                "server closed",
                "terminating",
                "shutting down",
                "starting up",
                "timeout",
            )
        )
    return False


@dataclass
class Retrier:
    """Retries calls that fail with :func:`is_unavailable` errors, for ``budget``
    seconds from the first failure; then raises :class:`DatabaseUnavailable`."""

    what: str
    budget: float | None = None
    sleep: Callable[[float], None] = time.sleep

    def __call__(self, fn: Callable[[], T], *, on_retry: Callable[[], None] | None = None) -> T:
        budget = retry_budget() if self.budget is None else self.budget
        waits = backoff(budget)
        first_failure: float | None = None
        while True:
            try:
                return fn()
            except Exception as e:
                if not is_unavailable(e):
                    raise
                if first_failure is None:
                    first_failure = time.monotonic()
                wait = next(waits, None)
                if wait is None:
                    raise _unavailable(e, self.what, budget) from None
                log.warning("%s: database unavailable, retrying in %.1fs: %s", self.what, wait, e)
                self.sleep(wait)
                if on_retry is not None:
                    on_retry()


def _unavailable(e: BaseException, what: str, budget: float) -> DatabaseUnavailable:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return DatabaseUnavailable(
        f"{what}: {reason} (gave up after {budget:g}s; BATON_DB_RETRY_SECONDS)"
    )


@dataclass(frozen=True)
class UnitState:
    """What the database says about a step execution, read under its row lock."""

    status: BatchStatus
    counts: Counts
    context: dict[str, Any]
    job_status: BatchStatus
    incarnations: int

    @property
    def commit_count(self) -> int:
        return self.counts.commit


def locked_unit_state(conn: Connection, step_id: int) -> UnitState:
    """The step execution's committed state, its row locked for the transaction (on
    SQLite the write transaction's lock does that), so that nobody can end it while
    the caller acts on what it read (truncating its files, say)."""
    S, E = StepExecutionRow, JobExecutionRow
    columns = list(Counts().columns())
    q = (
        select(
            S.status,
            S.context,
            S.incarnations,
            E.status.label("job_status"),
            *(getattr(S, c) for c in columns),
        )
        .join(E, E.id == S.execution_id)
        .where(S.id == step_id)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(of=S)
    row = conn.execute(q).one()
    counts = Counts(**{c.removesuffix("_count"): getattr(row, c) for c in columns})
    return UnitState(
        BatchStatus(row.status),
        counts,
        decode_context(row.context),
        BatchStatus(row.job_status),
        row.incarnations,
    )
