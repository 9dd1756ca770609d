"""Step units: open (start or resume), checkpoint every chunk, finish, fenced by incarnation.

Hot path: ``checkpoint`` runs inside the chunk's own transaction (which may also hold
the SQL writer's rows) and is one UPDATE that returns the job's status, so a stop
request is noticed without another query. A unit is held by the incarnation that
opened it: opening bumps ``incarnations``, and every later write of the unit requires
the number it opened with, so a process another one took over is refused (StepFenced)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, insert, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError

from baton.core.codec import encode_context
from baton.core.counts import ContextDelta, Counts
from baton.core.entities import JobExecution, StepExecution
from baton.core.errors import InvalidContext, NoSuchExecution, StepFenced
from baton.core.status import BatchStatus, UnitKind
from baton.repository.engine import SCHEMA_REVISION, is_unavailable, migrate
from baton.repository.executions import ExecutionQueries
from baton.repository.mapping import (
    MAX_TEXT,
    check_id,
    execution_of,
    jsonable,
    step_of,
    storable_text,
    utcnow,
)
from baton.repository.schema import (
    NO_PARTITION,
    JobExecutionRow,
    SkippedItemRow,
    StepExecutionRow,
)
from baton.repository.unit_open import UnitRow, decode, unit_query

E = JobExecutionRow
S = StepExecutionRow


@dataclass(frozen=True)
class OpenedUnit:
    """What a unit process reads and writes before its work (``open_unit``)."""

    execution: JobExecution
    step: StepExecution
    partition_args: Any


class _SchemaNotCurrent(Exception):
    """The repository's schema is missing or not at SCHEMA_REVISION."""


class StepUnits(ExecutionQueries):
    """The writes of a step execution's life: open, checkpoint, finish."""

    def open_step(
        self,
        execution: JobExecution,
        step_name: str,
        partition: int | None,
        *,
        worker: str | None,
        kind: str = UnitKind.STEP.value,
    ) -> StepExecution:
        """Start (or resume) the step execution for (step, partition) in this execution.

        A new one inherits the step context of the latest earlier attempt unless that
        one COMPLETED: that is how a restart resumes from its checkpoint.
        A row that already exists in this execution (a retried pod, the next
        incarnation) is resumed in place, keeping its context and counts.
        """
        with self.write() as conn:
            return _open_step(conn, execution, step_name, partition, worker, kind)

    def open_unit(
        self,
        execution_id: int,
        step_name: str,
        partition: int | None,
        *,
        worker: str | None,
        kind: str = UnitKind.STEP.value,
        admit: Callable[[JobExecution], bool],
    ) -> OpenedUnit | None:
        """Everything a unit's process needs before its work, in one transaction.

        A step pod is short-lived, so its round trips are its cost: one query
        (:mod:`baton.repository.unit_open`) reads the execution with its parameters, the
        partition's args, the schema revision and the step row to resume or inherit
        from; ``admit(execution)`` then decides (False: return None, writing nothing; an
        exception rolls back), and one write opens the step execution as ``open_step``
        does.
        The schema is checked in that first query instead of by ``migrate`` (which the
        launcher ran): a repository not at SCHEMA_REVISION is migrated (or refused)
        by ``migrate`` and the unit opened again.
        """
        check_id(execution_id)
        for attempt in (1, 2):
            try:
                with self.write() as conn:
                    unit = self._read_unit(
                        conn, execution_id, step_name, partition, kind, check=attempt == 1
                    )
                    if attempt == 1 and unit.execution.schema_revision != SCHEMA_REVISION:
                        raise _SchemaNotCurrent
                    execution = execution_of(
                        unit.execution, unit.execution.job_name, unit.parameters
                    )
                    if not admit(execution):
                        return None
                    step = _start_or_resume(
                        conn, execution, unit.step, step_name, partition, worker, kind
                    )
                    return OpenedUnit(execution, step, unit.partition_args)
            except _SchemaNotCurrent:
                migrate(self.engine)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_unit(
        self,
        conn: Connection,
        execution_id: int,
        step_name: str,
        partition: int | None,
        kind: str,
        *,
        check: bool,
    ) -> UnitRow:
        """The one SELECT of ``open_unit``; ``check``: a schema not migrated yet (no
        such table or column) is _SchemaNotCurrent."""
        q = unit_query(conn.dialect.name, execution_id, step_name, partition, kind)
        try:
            row = conn.execute(q).first()
        except (OperationalError, ProgrammingError) as e:
            if not check or (isinstance(e, OperationalError) and is_unavailable(e)):
                raise
            raise _SchemaNotCurrent from e
        if row is None:
            raise NoSuchExecution(f"no job execution with id {execution_id}")
        return decode(row)

    def set_total(self, step_execution_id: int, total: int | None) -> None:
        with self.write() as conn:
            conn.execute(update(S).where(S.id == step_execution_id).values(total_count=total))

    def checkpoint(
        self,
        conn: Connection,
        step: StepExecution,
        counts: Counts,
        context: dict[str, Any],
        skips: Sequence[tuple[str, Any, str]] = (),
    ) -> BatchStatus:
        """Record a committed chunk inside the caller's transaction; return the job's
        status in the same statement (UPDATE ... RETURNING (SELECT status ...)). A step
        context the repository cannot store is InvalidContext, naming the key, before
        anything is written."""
        stored = encode_context(context, "step context")
        now = utcnow()
        if skips:
            conn.execute(
                insert(SkippedItemRow),
                [
                    {
                        "step_execution_id": step.id,
                        "phase": phase,
                        "item": jsonable(item),
                        "error": storable_text(error[:MAX_TEXT]),
                        "created_at": now,
                    }
                    for phase, item, error in skips
                ],
            )
        job_status = select(E.status).where(E.id == step.execution_id).scalar_subquery()
        status = conn.execute(
            update(S)
            .where(*_held_by(step))
            .values(context=stored, last_updated=now, **counts.columns())
            .returning(job_status)
        ).scalar_one_or_none()
        if status is None:
            # Someone ended this unit (the operator found its pod gone, `baton recover`)
            # or another process took it over: the chunk must not commit, or a restart
            # would write its items again.
            raise StepFenced(
                f"step execution {step.id} ('{step.step_name}') was ended by someone else "
                "or taken over by another process (declared lost, recovered, or resumed "
                "elsewhere); this process stops without committing"
            )
        return BatchStatus(status)

    def finish_step(
        self,
        step: StepExecution,
        status: BatchStatus,
        *,
        counts: Counts | None = None,
        context: dict[str, Any] | None = None,
        exit_code: str | None = None,
        description: str = "",
        result: Any = None,
        peak_memory_kb: int | None = None,
        context_delta: ContextDelta | None = None,
        conn: Connection | None = None,
        only_running: bool = False,
    ) -> bool:
        """Close a step execution, and merge the job-context keys it changed, in one
        transaction (steps of a parallel group may change different keys at once).
        ``only_running``: leave a unit someone else already ended alone (return False)."""
        values = _finish_values(status, counts, context, exit_code, description)
        if result is not None:
            values["result"] = jsonable(result)
        if peak_memory_kb is not None:
            values["peak_memory_kb"] = peak_memory_kb
        where = _held_by(step) if only_running else [S.id == step.id]

        def run(c: Connection) -> bool:
            if c.execute(update(S).where(*where).values(**values)).rowcount == 0:
                return False
            if context_delta is not None and context_delta.changed:
                _merge_job_context(c, step.execution_id, context_delta)
            return True

        if conn is not None:
            return run(conn)
        with self.write() as c:
            return run(c)


def _held_by(step: StepExecution) -> list[Any]:
    """The fence: the unit is still STARTED *and* still this process's incarnation.
    Opening a unit bumps ``incarnations``, so a process that another one resumed (a
    revived unit, a second pod for the same partition) is refused at its next write."""
    return [
        S.id == step.id,
        S.status == BatchStatus.STARTED.value,
        S.incarnations == step.incarnations,
    ]


def _finish_values(
    status: BatchStatus,
    counts: Counts | None,
    context: dict[str, Any] | None,
    exit_code: str | None,
    description: str,
) -> dict[str, Any]:
    """The columns that close a step execution."""
    values: dict[str, Any] = {
        "status": status.value,
        "exit_code": exit_code or status.value,
        "exit_description": storable_text(description[:MAX_TEXT]),
        "last_updated": utcnow(),
        "version": S.version + 1,
    }
    if status.terminal:
        values["end_time"] = values["last_updated"]
    if counts is not None:
        values.update(counts.columns())
    if context is not None:
        try:
            values["context"] = encode_context(context, "step context")
        except InvalidContext:
            if status is BatchStatus.COMPLETED:
                raise
            # a failing or stopping step keeps its last checkpoint's context: what a
            # restart resumes from (the failure itself says what could not be stored)
    return values


def _merge_job_context(conn: Connection, execution_id: int, delta: ContextDelta) -> None:
    """Apply a step's context changes to the job context (row-locked on PostgreSQL)."""
    q = select(E.context).where(E.id == execution_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    stored = conn.execute(q).scalar_one()
    merged = delta.apply(stored if isinstance(stored, dict) else {})
    conn.execute(
        update(E).where(E.id == execution_id).values(context=merged, last_updated=utcnow())
    )


def _open_step(
    conn: Connection,
    execution: JobExecution,
    step_name: str,
    partition: int | None,
    worker: str | None,
    kind: str,
) -> StepExecution:
    """``open_step`` inside the caller's transaction: one query finds this execution's
    row or else the latest earlier attempt's, one write (RETURNING the row) starts or
    resumes it."""
    part = NO_PARTITION if partition is None else partition
    same = and_(S.step_name == step_name, S.partition == part, S.kind == kind)
    if kind == UnitKind.STEP:  # this execution's row first, else the latest earlier one
        q = (
            select(S.__table__)
            .join(E, E.id == S.execution_id)
            .where(same, E.instance_id == execution.instance_id, E.id <= execution.id)
            .order_by(case((S.execution_id == execution.id, 0), else_=1), S.id.desc())
            .limit(1)
        )
    else:  # compensations and callbacks never inherit a context
        q = select(S.__table__).where(same, S.execution_id == execution.id)
    row = conn.execute(q).first()
    return _start_or_resume(conn, execution, row, step_name, partition, worker, kind)


def _start_or_resume(
    conn: Connection,
    execution: JobExecution,
    row: Any,
    step_name: str,
    partition: int | None,
    worker: str | None,
    kind: str,
) -> StepExecution:
    """The write that opens a unit, given the step row found (``row``: this
    execution's, an earlier attempt's, or None): resume it in place, or start a new
    one that inherits an unfinished earlier context."""
    if row is not None and row.execution_id == execution.id:
        if BatchStatus(row.status) is BatchStatus.COMPLETED:
            return step_of(row)
        return _resume(conn, row, worker)
    part = NO_PARTITION if partition is None else partition
    now = utcnow()
    context: dict[str, Any] = {}  # in its stored form: copied, not decoded
    if row is not None and BatchStatus(row.status) is not BatchStatus.COMPLETED:
        context = dict(row.context) if isinstance(row.context, dict) else {}
    created = conn.execute(
        insert(S)
        .values(
            execution_id=execution.id,
            step_name=step_name,
            partition=part,
            kind=kind,
            version=0,
            status=BatchStatus.STARTED.value,
            start_time=now,
            last_updated=now,
            exit_code="EXECUTING",
            exit_description="",
            context=context,
            worker=worker,
            incarnations=1,
            **Counts().columns(),
        )
        .returning(*S.__table__.c)
    ).one()
    return step_of(created)


def _resume(conn: Connection, row: Any, worker: str | None) -> StepExecution:
    """This execution's own unit again: the next incarnation, keeping context and counts."""
    resumed = conn.execute(
        update(S)
        .where(S.id == row.id)
        .values(
            status=BatchStatus.STARTED.value,
            incarnations=S.incarnations + 1,
            worker=worker,
            end_time=None,
            last_updated=utcnow(),
            version=S.version + 1,
        )
        .returning(*S.__table__.c)
    ).one()
    return step_of(resumed)
