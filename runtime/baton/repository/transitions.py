"""Changing a job execution's status, always under ``core.status.TRANSITIONS``.

Every status write here is one UPDATE whose WHERE clause holds the table (status IN the
sources of the new status) and the version read (optimistic locking), so neither a
caller nor a race can move an execution along an edge the table does not have."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, func, select, text, update
from sqlalchemy.orm import aliased

from baton.core.entities import JobExecution
from baton.core.errors import OptimisticLockingFailure, UnexpectedJobExecutionState
from baton.core.status import BatchStatus, sources
from baton.repository.executions import ExecutionQueries
from baton.repository.mapping import MAX_TEXT, storable_text, utc, utcnow
from baton.repository.schema import JobExecutionRow, JobInstanceRow, StepExecutionRow

E = JobExecutionRow
S = StepExecutionRow


def _may_move_to(to: BatchStatus) -> Any:
    """The table as SQL: the row's status is one the table lets move to ``to``."""
    return E.status.in_(sorted(s.value for s in sources(to)))


class Transitions(ExecutionQueries):
    """Status changes of job executions: start, stop, finish, abandon, recover, admit."""

    def transition(
        self,
        execution_id: int,
        to: BatchStatus,
        *,
        action: str,
        exit_code: str | None = None,
        description: str | None = None,
        start: bool = False,
        end: bool = False,
        owner: str | None = None,
        decide: Callable[[JobExecution], BatchStatus | None] | None = None,
    ) -> JobExecution:
        """Move an execution to ``to`` (or to what ``decide`` picks from its current
        state; None: leave it) if TRANSITIONS allows that from its status, else
        UnexpectedJobExecutionState; a concurrent change makes it re-read and re-decide."""
        for _ in range(10):
            cur = self.get_execution(execution_id)
            target = decide(cur) if decide else to
            if target is None:
                return cur
            if cur.status not in sources(target):
                allowed = ", ".join(sorted(s.value for s in sources(target))) or "nowhere"
                raise UnexpectedJobExecutionState(
                    f"cannot {action} execution {execution_id}: it is {cur.status.value}"
                    f" (allowed from {allowed})"
                )
            values = _values(cur, target, exit_code, description, start, end, owner)
            with self.write() as conn:
                n = conn.execute(
                    update(E)
                    .where(E.id == execution_id, E.version == cur.version, _may_move_to(target))
                    .values(**values)
                ).rowcount
            if n == 1:
                return self.get_execution(execution_id)
        raise OptimisticLockingFailure(f"execution {execution_id} keeps changing; try again")

    def finish(
        self,
        execution_id: int,
        status: BatchStatus,
        description: str,
        exit_code: str | None = None,
    ) -> JobExecution:
        """End a running execution with the flow's outcome (both executors use this);
        ``exit_code`` defaults to the status's name."""
        return self.transition(
            execution_id,
            status,
            action="finish",
            exit_code=exit_code or status.value,
            description=description,
            end=True,
        )

    def end_orphaned(
        self, execution: JobExecution, status: BatchStatus, description: str, action: str
    ) -> JobExecution:
        """End an execution nobody runs any more (its process or pods are gone): its
        running steps become FAILED and the execution ``status``, if the table allows."""
        self.fail_running_steps(execution.id, description)
        return self.transition(
            execution.id,
            status,
            action=action,
            exit_code=status.value,
            description=description,
            end=True,
        )

    def fail_running_steps(self, execution_id: int, description: str) -> None:
        """Recovery: step executions left STARTED by a dead process become FAILED."""
        running = [s.value for s in BatchStatus if s.running]
        with self.write() as conn:
            conn.execute(
                update(S)
                .where(S.execution_id == execution_id, S.status.in_(running))
                .values(
                    status=BatchStatus.FAILED.value,
                    exit_code="FAILED",
                    exit_description=storable_text(description[:MAX_TEXT]),
                    end_time=utcnow(),
                    version=S.version + 1,
                )
            )

    # ------------------------------------------------------------ concurrency

    def admit(
        self,
        execution: JobExecution,
        *,
        max_running: int,
        cooldown_seconds: float,
        waiting_alive: Callable[[JobExecution], bool],
        owner: str,
    ) -> bool:
        """Start a STARTING execution if the job's concurrency allows it now: fewer than
        ``max_running`` executions running, none older still waiting its turn, and the
        cooldown since the job's last start passed — counting the executions of the
        job in the execution's namespace only. Decided under a lock, atomically."""
        with self.write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(7234002, hashtext(:j))"),
                    {"j": execution.job_name},
                )
            same_job = _same_job(execution)
            if not self._turn_of(conn, execution, same_job, max_running, waiting_alive):
                return False
            if cooldown_seconds and _cooling_down(conn, same_job, cooldown_seconds):
                return False
            now = utcnow()
            n = conn.execute(
                update(E)
                .where(
                    E.id == execution.id,
                    E.status == BatchStatus.STARTING.value,
                    _may_move_to(BatchStatus.STARTED),
                )
                .values(
                    status=BatchStatus.STARTED.value,
                    start_time=now,
                    last_updated=now,
                    owner=owner,
                    version=E.version + 1,
                )
            ).rowcount
            return n == 1

    def _turn_of(
        self,
        conn: Connection,
        execution: JobExecution,
        same_job: Any,
        max_running: int,
        waiting_alive: Callable[[JobExecution], bool],
    ) -> bool:
        """Fewer than ``max_running`` of the job run, and no older one waits its turn."""
        running = [
            s.value for s in (BatchStatus.STARTED, BatchStatus.STOPPING, BatchStatus.COMPENSATING)
        ]
        rows = conn.execute(
            select(E.id, E.status, E.start_time, E.owner)
            .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
            .where(same_job)
            .where(
                E.status.in_([*running, BatchStatus.STARTING.value]),
                E.id != execution.id,
            )
        ).all()
        busy = sum(1 for r in rows if r.status in running)
        ahead = [
            r
            for r in rows
            if r.status == BatchStatus.STARTING.value
            and r.id < execution.id
            and waiting_alive(self.get_execution(r.id))
        ]
        return busy < max_running and not ahead


def _same_job(execution: JobExecution) -> Any:
    """SQL: an instance of the execution's job in the execution's namespace (read by a
    subquery inside the statement that uses it: no round trip of its own)."""
    own = aliased(JobInstanceRow)
    namespace = select(own.namespace).where(own.id == execution.instance_id).scalar_subquery()
    return and_(
        JobInstanceRow.namespace == namespace, JobInstanceRow.job_name == execution.job_name
    )


def _cooling_down(conn: Connection, same_job: Any, cooldown_seconds: float) -> bool:
    """The job's last start was less than ``cooldown_seconds`` ago."""
    last_start = utc(
        conn.execute(
            select(func.max(E.start_time))
            .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
            .where(same_job)
        ).scalar()
    )
    return bool(last_start and (utcnow() - last_start).total_seconds() < cooldown_seconds)


def _values(
    cur: JobExecution,
    target: BatchStatus,
    exit_code: str | None,
    description: str | None,
    start: bool,
    end: bool,
    owner: str | None,
) -> dict[str, Any]:
    """The columns a transition of ``cur`` to ``target`` sets."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": target.value,
        "version": cur.version + 1,
        "last_updated": now,
    }
    if exit_code is not None:
        values["exit_code"] = exit_code
    if description is not None:
        values["exit_description"] = storable_text(description[:MAX_TEXT])
    if start:
        values["start_time"] = cur.start_time or now
        values["end_time"] = None
    if end:
        values["end_time"] = now
    if owner is not None:
        values["owner"] = owner
    return values
