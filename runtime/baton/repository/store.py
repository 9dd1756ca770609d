"""The JobRepository: every read and write of batch metadata, nothing else.

Hot path: ``checkpoint`` runs inside the chunk's own transaction (which may also hold
the SQL writer's rows) and is one UPDATE that returns the job's status, so a stop
request is noticed without another query. Everything else is off the hot path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Numeric,
    Row,
    and_,
    case,
    cast,
    func,
    insert,
    null,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from baton.core.entities import JobExecution, JobInstance, SkippedItem, StepExecution
from baton.core.errors import (
    DatabaseUnavailable,
    InstanceCompensated,
    InvalidContext,
    InvalidDefinition,
    InvalidParameters,
    JobExecutionAlreadyRunning,
    JobInstanceAlreadyComplete,
    JobRestartRejected,
    LaunchRejected,
    NoSuchExecution,
    OptimisticLockingFailure,
    StepFenced,
    UnexpectedJobExecutionState,
)
from baton.core.parameters import JobParameter, JobParameters, ParamType, parse_value
from baton.core.restart import LaunchVerdict, launch_verdict, verdict_message
from baton.core.status import BatchStatus
from baton.repository.codec import decode_context, encode_context
from baton.repository.engine import (
    SCHEMA_REVISION,
    has_password,
    is_unavailable,
    make_engine,
    migrate,
    unavailable,
    version_table,
    write_transaction,
)
from baton.repository.schema import (
    NO_PARTITION,
    JobExecutionRow,
    JobInstanceRow,
    JobParameterRow,
    PartitionRow,
    SkippedItemRow,
    StepExecutionRow,
)

T = TypeVar("T")
STEP = "step"
MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist (and would not even bind)
MAX_DEPTH = 100
E = JobExecutionRow
S = StepExecutionRow

_REJECTIONS: dict[LaunchVerdict, type[LaunchRejected]] = {
    LaunchVerdict.ALREADY_COMPLETE: JobInstanceAlreadyComplete,
    LaunchVerdict.ALREADY_RUNNING: JobExecutionAlreadyRunning,
    LaunchVerdict.ABANDONED: JobRestartRejected,
    LaunchVerdict.PREVENT_RESTART: JobRestartRejected,
    LaunchVerdict.UNKNOWN_STATE: JobRestartRejected,
    LaunchVerdict.COMPENSATED: InstanceCompensated,
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def jsonable(value: Any) -> Any:
    """Items, results and partition args as JSON both backends accept: as they are when
    they can be; else containers converted element by element, dates as ISO text,
    Decimal/UUID as text, NaN/infinity and anything else as its repr (never a value
    PostgreSQL's ``json`` refuses, never a cycle)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError, RecursionError):
        return _jsonable(value, set(), 0)


def _jsonable(value: Any, seen: set[int], depth: int) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    key = id(value)
    if key in seen or depth >= MAX_DEPTH:
        return "<cycle>" if key in seen else repr(value)[:1000]
    seen.add(key)
    try:
        if hasattr(value, "_asdict"):
            value = value._asdict()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        elif hasattr(value, "__dict__") and not isinstance(value, type) and not callable(value):
            value = vars(value)
        if isinstance(value, Mapping):
            return {str(k): _jsonable(v, seen, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_jsonable(v, seen, depth + 1) for v in value]
        return repr(value)
    finally:
        seen.discard(key)


def _text(value: str) -> str:
    """Text both backends store: PostgreSQL refuses NUL, neither takes a lone surrogate."""
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _check_parameters(params: JobParameters) -> None:
    """Refuse parameters that one backend or the other cannot store as given."""
    for p in params.items:
        for what, value in (("name", p.name), ("value", p.text)):
            problem = _text_problem(value)
            if problem:
                raise InvalidParameters(f"parameter {_text(p.name)!r}: its {what} {problem}")
        if len(p.name) > 255:
            raise InvalidParameters(f"parameter {p.name[:40]!r}...: name longer than 255")


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text (a lone surrogate)"
    return None


def _check_no_secrets(spec: Any, path: str = "") -> None:
    """The job definition is stored whole (every step process reads it, ``show`` and the
    operator print it): refuse a URL carrying a password anywhere in it, so that none
    is ever stored. The password belongs in the environment (PGPASSWORD, a Secret)."""
    if isinstance(spec, str):
        if "@" in spec and has_password(spec):
            raise InvalidDefinition(
                f"{path or 'the job definition'} holds a URL with a password; the job "
                "definition is stored in the repository, so a password must not be in it: "
                "leave it out of the URL (postgresql://USER@HOST/DB) and give it to the "
                "step through its environment (PGPASSWORD or ~/.pgpass; in a cluster from "
                "a Secret)"
            )
    elif isinstance(spec, Mapping):
        for k, v in spec.items():
            _check_no_secrets(v, f"{path}.{k}" if path else str(k))
    elif isinstance(spec, list | tuple):
        for i, v in enumerate(spec):
            _check_no_secrets(v, f"{path}[{i}]")


def _check_id(execution_id: int, what: str = "job execution") -> None:
    """An id no row can have (negative, zero, past BIGINT) is simply not found."""
    if not isinstance(execution_id, int) or not 0 < execution_id <= MAX_ID:
        raise NoSuchExecution(f"no {what} with id {execution_id}")


@dataclass
class Counts:
    """A step execution's counters, kept in memory by the chunk loop and written whole."""

    read: int = 0
    write: int = 0
    filter: int = 0
    read_skip: int = 0
    process_skip: int = 0
    write_skip: int = 0
    commit: int = 0
    rollback: int = 0

    @property
    def skip(self) -> int:
        return self.read_skip + self.process_skip + self.write_skip

    @classmethod
    def of(cls, step: StepExecution) -> Counts:
        return cls(
            read=step.read_count,
            write=step.write_count,
            filter=step.filter_count,
            read_skip=step.read_skip_count,
            process_skip=step.process_skip_count,
            write_skip=step.write_skip_count,
            commit=step.commit_count,
            rollback=step.rollback_count,
        )

    def columns(self) -> dict[str, int]:
        return {
            "read_count": self.read,
            "write_count": self.write,
            "filter_count": self.filter,
            "read_skip_count": self.read_skip,
            "process_skip_count": self.process_skip,
            "write_skip_count": self.write_skip,
            "commit_count": self.commit,
            "rollback_count": self.rollback,
        }


@dataclass
class ContextDelta:
    """What a step changed in the job context: keys set and keys removed."""

    updated: dict[str, Any]
    removed: set[str]

    @classmethod
    def between(cls, before: Mapping[str, Any], after: Mapping[str, Any]) -> ContextDelta:
        """The change; InvalidContext (naming the key) when a value set, or changed in
        place, cannot be stored: raised here, where the step can still fail with it."""
        delta = cls(
            {k: v for k, v in after.items() if k not in before or before[k] != v},
            set(before) - set(after),
        )
        delta.encoded()
        return delta

    @property
    def changed(self) -> bool:
        return bool(self.updated or self.removed)

    def encoded(self) -> dict[str, Any]:
        return encode_context(self.updated, "job context")

    def apply(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Merge into a context in its stored (encoded) form."""
        merged = {k: v for k, v in context.items() if k not in self.removed}
        merged.update(self.encoded())
        return merged


@dataclass(frozen=True)
class OpenedUnit:
    """What a unit process reads and writes before its work (``open_unit``)."""

    execution: JobExecution
    step: StepExecution
    partition_args: Any


class _SchemaNotCurrent(Exception):
    """The repository's schema is missing or not at SCHEMA_REVISION."""


class JobRepository:
    """Instances, executions, parameters, step executions, contexts and skips."""

    def __init__(
        self,
        url: str,
        *,
        engine: Engine | None = None,
        auto_migrate: bool = True,
        interactive: bool = False,
    ):
        """``interactive``: a command a person waits for (stop, listings): on SQLite a
        write waits 10 s, not 60 s, for another's write lock before DatabaseBusy
        ($BATON_DB_BUSY_TIMEOUT overrides both)."""
        self.engine = engine or make_engine(url, interactive=interactive)
        self.url = str(self.engine.url.render_as_string(hide_password=False))
        if auto_migrate:
            migrate(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A read-only ORM session (entities come back as rows of the typed classes)."""
        try:
            with Session(self.engine) as session:
                yield session
        except DBAPIError as e:
            raise self._unavailable(e) from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (the chunk loop uses it for its checkpoint). A database
        that is down, busy past the busy timeout or not one is DatabaseUnavailable (or
        DatabaseBusy); an error about a statement (a user's writer's) stays as it is."""
        try:
            with write_transaction(self.engine) as conn:
                yield conn
        except DBAPIError as e:
            if is_unavailable(e):
                raise self._unavailable(e) from None
            raise

    def _unavailable(self, e: DBAPIError) -> DatabaseUnavailable:
        return unavailable(e, self.engine)

    # ------------------------------------------------------------ launch

    def launch(
        self,
        job_name: str,
        job_spec: dict[str, Any],
        params: JobParameters,
        *,
        prevent_restart: bool,
        source_dir: str | None,
        owner: str | None,
        context: Mapping[str, Any] | None = None,
        next_id: str | None = None,
    ) -> JobExecution:
        """Create the next JobExecution of the instance these parameters identify,
        applying the restart table atomically (the instance row is locked).
        ``context`` seeds the job context; on a restart what the instance's steps
        already put there wins. ``next_id`` (the incrementer, ``run.id``): add it, one
        past the largest the job used, inside this transaction, which is serialized
        per job, so concurrent start-next launches each get their own instance.

        Nothing is recorded for what the repository cannot keep faithfully: a NUL or
        a lone surrogate in a parameter (InvalidParameters), a password in the job
        definition (InvalidDefinition: the snapshot is read by every step process and
        shown by ``show``), a context value it cannot store (InvalidContext)."""
        _check_parameters(params)
        _check_no_secrets(job_spec)
        try:
            seed = encode_context(context or {}, "initial job context")
        except InvalidContext as e:  # a launch input, like a parameter (the operator
            raise InvalidParameters(str(e)) from None  # rejects those with a condition)
        for _ in range(3):
            try:
                with self.write() as conn:
                    execution_id = self._launch(
                        conn,
                        job_name,
                        job_spec,
                        params,
                        prevent_restart,
                        source_dir,
                        owner,
                        seed,
                        next_id,
                    )
                return self.get_execution(execution_id)
            except IntegrityError:
                continue  # a concurrent launch created the instance first: re-run the rules
        raise JobExecutionAlreadyRunning(f"job '{job_name}' is being launched concurrently")

    def _launch(
        self,
        conn: Connection,
        job_name: str,
        job_spec: dict[str, Any],
        params: JobParameters,
        prevent_restart: bool,
        source_dir: str | None,
        owner: str | None,
        seed: dict[str, Any],
        next_id: str | None,
    ) -> int:
        now = utcnow()
        if conn.dialect.name == "postgresql":
            # Launches of one job serialize (SQLite's BEGIN IMMEDIATE already does):
            # the next run.id and the instance lookup see every earlier launch.
            conn.execute(
                text("SELECT pg_advisory_xact_lock(7234003, hashtext(:j))"), {"j": job_name}
            )
        if next_id is not None:
            run_id = self._next_run_id(conn, job_name, next_id)
            params = params.with_param(JobParameter(next_id, ParamType.INT, run_id, True))
        key = params.key()
        q = select(JobInstanceRow.id).where(
            JobInstanceRow.job_name == job_name, JobInstanceRow.job_key == key
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        instance_id = conn.execute(q).scalar()
        last = None
        if instance_id is None:
            instance_id = conn.execute(
                insert(JobInstanceRow).values(job_name=job_name, job_key=key, created_at=now)
            ).inserted_primary_key[0]  # type: ignore[index]
        else:
            last = conn.execute(
                select(E.id, E.status, E.attempt, E.context)
                .where(E.instance_id == instance_id)
                .order_by(E.id.desc())
                .limit(1)
            ).first()
        verdict = launch_verdict(
            BatchStatus(last.status) if last else None, prevent_restart=prevent_restart
        )
        if verdict not in (LaunchVerdict.NEW_INSTANCE, LaunchVerdict.RESTART):
            raise _REJECTIONS[verdict](
                verdict_message(verdict, job_name, last.id if last else None)
            )
        inherited = last.context if last is not None and isinstance(last.context, dict) else {}
        execution_id: int = conn.execute(
            insert(E).values(
                instance_id=instance_id,
                version=0,
                attempt=(last.attempt + 1) if last else 1,
                status=BatchStatus.STARTING.value,
                exit_code="UNKNOWN",
                exit_description="",
                created_at=now,
                last_updated=now,
                owner=owner,
                source_dir=source_dir,
                job_spec=job_spec,
                context={**seed, **inherited},
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        if params.items:
            conn.execute(
                insert(JobParameterRow),
                [
                    {
                        "execution_id": execution_id,
                        "name": p.name,
                        "type": p.type.value,
                        "value": p.text,
                        "identifying": p.identifying,
                    }
                    for p in params.items
                ],
            )
        return execution_id

    def next_run_id(self, job_name: str, param: str = "run.id") -> int:
        """The incrementer: one more than the largest ``run.id`` any instance used (a
        launch with ``next_id`` takes it inside its own transaction instead)."""
        with self._read() as session:
            return self._next_run_id(session.connection(), job_name, param)

    def _next_run_id(self, conn: Connection, job_name: str, param: str) -> int:
        top = conn.execute(
            select(func.max(cast(JobParameterRow.value, Numeric)))
            .join(E, E.id == JobParameterRow.execution_id)
            .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
            .where(
                JobInstanceRow.job_name == job_name,
                JobParameterRow.name == param,
                JobParameterRow.type == ParamType.INT.value,
            )
        ).scalar()
        return int(top or 0) + 1

    # ------------------------------------------------------------ queries

    def get_execution(self, execution_id: int) -> JobExecution:
        _check_id(execution_id)
        found = self._executions(E.id == execution_id)
        if not found:
            raise NoSuchExecution(f"no job execution with id {execution_id}")
        return found[0]

    def executions(
        self,
        *,
        job: str | None = None,
        running: bool = False,
        instance_id: int | None = None,
        limit: int | None = None,
    ) -> list[JobExecution]:
        conds = []
        if job is not None:
            conds.append(JobInstanceRow.job_name == job)
        if running:
            conds.append(E.status.in_([s.value for s in BatchStatus if s.running]))
        if instance_id is not None:
            conds.append(E.instance_id == instance_id)
        return self._executions(and_(True, *conds), limit=limit)

    def _executions(self, where: Any, limit: int | None = None) -> list[JobExecution]:
        with self._read() as conn:
            q = (
                select(E, JobInstanceRow.job_name)
                .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
                .where(where)
                .order_by(E.id.desc())
            )
            if limit:
                q = q.limit(limit)
            rows = conn.execute(q).all()
            params = self._params(conn, [r[0].id for r in rows])
        return [_execution(r[0], r[1], params.get(r[0].id, ())) for r in rows]

    def _params(
        self, conn: Session | Connection, ids: list[int]
    ) -> dict[int, tuple[JobParameter, ...]]:
        out: dict[int, list[JobParameter]] = {}
        if not ids:
            return {}
        P = JobParameterRow
        rows = conn.execute(
            select(P.execution_id, P.name, P.type, P.value, P.identifying).where(
                P.execution_id.in_(ids)
            )
        )
        for p in rows:
            kind = ParamType(p.type)
            out.setdefault(p.execution_id, []).append(
                JobParameter(p.name, kind, parse_value(kind, p.value), p.identifying)
            )
        return {k: tuple(v) for k, v in out.items()}

    def last_execution(self, job: str, key: str) -> JobExecution | None:
        """The newest execution of the instance (job, key), if any."""
        found = self._executions(
            and_(JobInstanceRow.job_name == job, JobInstanceRow.job_key == key), limit=1
        )
        return found[0] if found else None

    def instances(self, job: str) -> list[JobInstance]:
        with self._read() as conn:
            rows = conn.execute(
                select(JobInstanceRow)
                .where(JobInstanceRow.job_name == job)
                .order_by(JobInstanceRow.id.desc())
            ).scalars()
            return [JobInstance(r.id, r.job_name, r.job_key, r.created_at) for r in rows]

    def job_names(self) -> list[str]:
        with self._read() as conn:
            q = select(JobInstanceRow.job_name).distinct().order_by(JobInstanceRow.job_name)
            return list(conn.execute(q).scalars())

    def job_summaries(self) -> list[dict[str, Any]]:
        """Per job: instance and execution counts and the last execution's status."""
        with self._read() as conn:
            counts = conn.execute(
                select(
                    JobInstanceRow.job_name,
                    func.count(func.distinct(JobInstanceRow.id)),
                    func.count(E.id),
                    func.max(E.id),
                )
                .join(E, E.instance_id == JobInstanceRow.id, isouter=True)
                .group_by(JobInstanceRow.job_name)
                .order_by(JobInstanceRow.job_name)
            ).all()
            last_ids = [c[3] for c in counts if c[3] is not None]
            last = dict(conn.execute(select(E.id, E.status).where(E.id.in_(last_ids))).all())
        return [
            {
                "job": name,
                "instances": n_inst,
                "executions": n_exec,
                "lastExecutionId": last_id,
                "lastStatus": last.get(last_id),
            }
            for name, n_inst, n_exec, last_id in counts
        ]

    def step_executions(self, execution_id: int) -> list[StepExecution]:
        if not 0 < execution_id <= MAX_ID:
            return []
        with self._read() as conn:
            rows = conn.execute(
                select(S).where(S.execution_id == execution_id).order_by(S.id)
            ).scalars()
            return [_step(r) for r in rows]

    def get_step(self, step_execution_id: int) -> StepExecution:
        _check_id(step_execution_id, "step execution")
        with self._read() as conn:
            row = conn.execute(select(S).where(S.id == step_execution_id)).scalar_one_or_none()
            if row is None:
                raise NoSuchExecution(f"no step execution with id {step_execution_id}")
            return _step(row)

    def previous_steps(
        self, execution: JobExecution
    ) -> dict[tuple[str, int | None], StepExecution]:
        """The latest step execution of every (step, partition) in earlier executions
        of the same instance: what the restart rules look at."""
        with self._read() as conn:
            latest = (
                select(func.max(S.id))
                .join(E, E.id == S.execution_id)
                .where(
                    E.instance_id == execution.instance_id,
                    E.id < execution.id,
                    S.kind == STEP,
                )
                .group_by(S.step_name, S.partition)
            )
            rows = conn.execute(select(S).where(S.id.in_(latest))).scalars()
            return {(r.step_name, _partition(r.partition)): _step(r) for r in rows}

    def skipped_items(self, execution_id: int) -> list[SkippedItem]:
        if not 0 < execution_id <= MAX_ID:
            return []
        with self._read() as conn:
            rows = conn.execute(
                select(SkippedItemRow, S.step_name, S.partition)
                .join(S, S.id == SkippedItemRow.step_execution_id)
                .where(S.execution_id == execution_id)
                .order_by(SkippedItemRow.id)
            ).all()
        return [
            SkippedItem(
                r[0].id,
                r[0].step_execution_id,
                r[1],
                _partition(r[2]),
                r[0].phase,
                r[0].item,
                r[0].error,
                r[0].created_at,
            )
            for r in rows
        ]

    def counts(self, job: str) -> tuple[int, int]:
        """(instances, executions) of a job."""
        with self._read() as conn:
            n_inst = conn.execute(
                select(func.count()).where(JobInstanceRow.job_name == job)
            ).scalar_one()
            n_exec = conn.execute(
                select(func.count())
                .select_from(E)
                .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
                .where(JobInstanceRow.job_name == job)
            ).scalar_one()
        return int(n_inst), int(n_exec)

    # ------------------------------------------------------------ transitions

    def transition(
        self,
        execution_id: int,
        to: BatchStatus,
        *,
        allowed: Iterable[BatchStatus],
        action: str,
        exit_code: str | None = None,
        description: str | None = None,
        start: bool = False,
        end: bool = False,
        owner: str | None = None,
        decide: Callable[[JobExecution], BatchStatus | None] | None = None,
    ) -> JobExecution:
        """Move an execution to ``to`` if its status is one of ``allowed``, with
        optimistic locking: a concurrent change makes it re-read and re-decide."""
        allowed = frozenset(allowed)
        for _ in range(10):
            cur = self.get_execution(execution_id)
            target = decide(cur) if decide else to
            if target is None:
                return cur
            if cur.status not in allowed:
                raise UnexpectedJobExecutionState(
                    f"cannot {action} execution {execution_id}: it is {cur.status.value}"
                    f" (allowed from {', '.join(sorted(s.value for s in allowed))})"
                )
            now = utcnow()
            values: dict[str, Any] = {
                "status": target.value,
                "version": cur.version + 1,
                "last_updated": now,
            }
            if exit_code is not None:
                values["exit_code"] = exit_code
            if description is not None:
                values["exit_description"] = _text(description[:20000])
            if start:
                values["start_time"] = cur.start_time or now
                values["end_time"] = None
            if end:
                values["end_time"] = now
            if owner is not None:
                values["owner"] = owner
            with self.write() as conn:
                n = conn.execute(
                    update(E).where(E.id == execution_id, E.version == cur.version).values(**values)
                ).rowcount
            if n == 1:
                return self.get_execution(execution_id)
        raise OptimisticLockingFailure(f"execution {execution_id} keeps changing; try again")

    def finish(self, execution_id: int, status: BatchStatus, description: str) -> JobExecution:
        """End a running execution with the flow's outcome (both executors use this)."""
        return self.transition(
            execution_id,
            status,
            allowed=(
                BatchStatus.STARTING,
                BatchStatus.STARTED,
                BatchStatus.STOPPING,
                BatchStatus.COMPENSATING,
            ),
            action="finish",
            exit_code=status.value,
            description=description,
            end=True,
        )

    # ------------------------------------------------------------ steps

    def open_step(
        self,
        execution: JobExecution,
        step_name: str,
        partition: int | None,
        *,
        worker: str | None,
        kind: str = "step",
    ) -> StepExecution:
        """Start (or resume) the step execution for (step, partition) in this execution.

        A new one inherits the step context of the latest earlier attempt unless that
        one COMPLETED: that is how a restart resumes from its checkpoint.
        A row that already exists in this execution (a retried pod, the next
        incarnation) is resumed in place, keeping its context and counts.
        """
        with self.write() as conn:
            return self._open_step(conn, execution, step_name, partition, worker, kind)

    def _open_step(
        self,
        conn: Connection,
        execution: JobExecution,
        step_name: str,
        partition: int | None,
        worker: str | None,
        kind: str,
    ) -> StepExecution:
        """``open_step`` inside the caller's transaction: one query finds this
        execution's row or else the latest earlier attempt's, one write (RETURNING the
        row) starts or resumes it."""
        part = NO_PARTITION if partition is None else partition
        now = utcnow()
        same = and_(S.step_name == step_name, S.partition == part, S.kind == kind)
        if kind == STEP:  # this execution's row first, else the latest earlier one
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
        columns = S.__table__.c
        if row is not None and row.execution_id == execution.id:
            if BatchStatus(row.status) is BatchStatus.COMPLETED:
                return _step(row)
            resumed = conn.execute(
                update(S)
                .where(S.id == row.id)
                .values(
                    status=BatchStatus.STARTED.value,
                    incarnations=S.incarnations + 1,
                    worker=worker,
                    end_time=None,
                    last_updated=now,
                    version=S.version + 1,
                )
                .returning(*columns)
            ).one()
            return _step(resumed)
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
            .returning(*columns)
        ).one()
        return _step(created)

    def open_unit(
        self,
        execution_id: int,
        step_name: str,
        partition: int | None,
        *,
        worker: str | None,
        kind: str = "step",
        admit: Callable[[JobExecution], bool],
    ) -> OpenedUnit | None:
        """Everything a unit's process needs before its work, in one transaction.

        A step pod is short-lived, so its round trips are its cost: one query reads the
        execution with the partition's args and the schema revision, one its parameters;
        ``admit(execution)`` then decides (False: return None, writing nothing; an
        exception rolls back), and the step execution is opened as ``open_step`` does.
        The schema is checked in that first query instead of by ``migrate`` (which the
        launcher ran): a repository not at SCHEMA_REVISION is migrated (or refused)
        by ``migrate`` and the unit opened again.
        """
        for attempt in (1, 2):
            try:
                with self.write() as conn:
                    execution, args = self._unit_execution(
                        conn, execution_id, step_name, partition, kind, check=attempt == 1
                    )
                    if not admit(execution):
                        return None
                    step = self._open_step(conn, execution, step_name, partition, worker, kind)
                    return OpenedUnit(execution, step, args)
            except _SchemaNotCurrent:
                migrate(self.engine)
        raise AssertionError("unreachable")  # pragma: no cover

    def _unit_execution(
        self,
        conn: Connection,
        execution_id: int,
        step_name: str,
        partition: int | None,
        kind: str,
        *,
        check: bool,
    ) -> tuple[JobExecution, Any]:
        _check_id(execution_id)
        args: ColumnElement[Any] = null()
        if kind == STEP and partition is not None:
            args = (
                select(PartitionRow.args)
                .where(
                    PartitionRow.instance_id == E.instance_id,
                    PartitionRow.step_name == step_name,
                    PartitionRow.idx == partition,
                )
                .scalar_subquery()
            )
        revision = select(version_table.c.version_num).limit(1).scalar_subquery()
        q = (
            select(
                E.__table__,
                JobInstanceRow.job_name,
                args.label("partition_args"),
                revision.label("schema_revision"),
            )
            .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
            .where(E.id == execution_id)
        )
        try:
            row = conn.execute(q).first()
        except (OperationalError, ProgrammingError) as e:
            if not check or (isinstance(e, OperationalError) and _is_connection_error(e)):
                raise
            raise _SchemaNotCurrent from e  # no such table/column: not migrated yet
        if row is None:
            raise NoSuchExecution(f"no job execution with id {execution_id}")
        if check and row.schema_revision != SCHEMA_REVISION:
            raise _SchemaNotCurrent
        params = self._params(conn, [execution_id]).get(execution_id, ())
        return _execution(row, row.job_name, params), row.partition_args

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
                        "error": _text(error[:20000]),
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
        values: dict[str, Any] = {
            "status": status.value,
            "exit_code": exit_code or status.value,
            "exit_description": _text(description[:20000]),
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
        if result is not None:
            values["result"] = jsonable(result)
        if peak_memory_kb is not None:
            values["peak_memory_kb"] = peak_memory_kb

        def run(c: Connection) -> bool:
            where = _held_by(step) if only_running else [S.id == step.id]
            if c.execute(update(S).where(*where).values(**values)).rowcount == 0:
                return False
            if context_delta is not None and context_delta.changed:
                q = select(E.context).where(E.id == step.execution_id)
                if c.dialect.name == "postgresql":
                    q = q.with_for_update()
                stored = c.execute(q).scalar_one()
                merged = context_delta.apply(stored if isinstance(stored, dict) else {})
                c.execute(
                    update(E)
                    .where(E.id == step.execution_id)
                    .values(context=merged, last_updated=utcnow())
                )
            return True

        if conn is not None:
            return run(conn)
        with self.write() as c:
            return run(c)

    # ------------------------------------------------------------ partitions & results

    def partition_counts(self, instance_id: int) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(PartitionRow.step_name, func.max(PartitionRow.idx))
                .where(PartitionRow.instance_id == instance_id)
                .group_by(PartitionRow.step_name)
            ).all()
            return {name: int(top) + 1 for name, top in rows}

    def plan_partitions(self, instance_id: int, step_name: str, args: Sequence[Any]) -> int:
        """Record a step's declared partitions once per instance; return how many there are
        (a restart finds them planned already, with any added dynamically)."""
        with self.write() as conn:
            top = conn.execute(
                select(func.max(PartitionRow.idx)).where(
                    PartitionRow.instance_id == instance_id, PartitionRow.step_name == step_name
                )
            ).scalar()
            if top is not None:
                return int(top) + 1
            now = utcnow()
            # Row -1 marks the step as planned, so zero declared partitions is a plan too.
            conn.execute(
                insert(PartitionRow),
                [
                    {
                        "instance_id": instance_id,
                        "step_name": step_name,
                        "idx": i,
                        "args": jsonable(a),
                        "added_by": None,
                        "created_at": now,
                    }
                    for i, a in enumerate([None, *args], start=-1)
                ],
            )
            return len(args)

    def add_partitions(
        self, instance_id: int, step_name: str, args: Sequence[Any], added_by: str
    ) -> list[int]:
        """Append partitions to a step (dynamic work); return their indices."""
        with self.write() as conn:
            top = conn.execute(
                select(func.max(PartitionRow.idx)).where(
                    PartitionRow.instance_id == instance_id, PartitionRow.step_name == step_name
                )
            ).scalar()
            start = -1 if top is None else int(top)
            now = utcnow()
            rows = [
                {
                    "instance_id": instance_id,
                    "step_name": step_name,
                    "idx": start + 1 + i,
                    "args": jsonable(a),
                    "added_by": added_by,
                    "created_at": now,
                }
                for i, a in enumerate(args)
            ]
            if rows:
                conn.execute(insert(PartitionRow), rows)
            return [r["idx"] for r in rows]

    def partition_args(self, instance_id: int, step_name: str, idx: int) -> Any:
        with self._read() as conn:
            return conn.execute(
                select(PartitionRow.args).where(
                    PartitionRow.instance_id == instance_id,
                    PartitionRow.step_name == step_name,
                    PartitionRow.idx == idx,
                )
            ).scalar()

    def results(self, instance_id: int, step_name: str) -> list[Any]:
        """Results of a step's latest COMPLETED executions in the instance, in partition
        order (a reduce reads a map step's results even when the map ran in an earlier
        execution of the instance)."""
        with self._read() as conn:
            latest = (
                select(func.max(S.id))
                .join(E, E.id == S.execution_id)
                .where(
                    E.instance_id == instance_id,
                    S.step_name == step_name,
                    S.kind == STEP,
                    S.status == BatchStatus.COMPLETED.value,
                )
                .group_by(S.partition)
            )
            rows = conn.execute(
                select(S.result).where(S.id.in_(latest)).order_by(S.partition)
            ).all()
            return [r[0] for r in rows]

    def history(self, job: str, limit: int = 200) -> list[tuple[JobExecution, StepExecution]]:
        """Step executions of a job's executions, newest first: who ran what, where."""
        executions = {e.id: e for e in self.executions(job=job, limit=limit)}
        if not executions:
            return []
        with self._read() as conn:
            rows = conn.execute(
                select(S).where(S.execution_id.in_(list(executions))).order_by(S.id.desc())
            ).scalars()
            return [(executions[r.execution_id], _step(r)) for r in rows]

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
        cooldown since the job's last start passed. Decided under a lock, atomically."""
        running = [
            s.value for s in (BatchStatus.STARTED, BatchStatus.STOPPING, BatchStatus.COMPENSATING)
        ]
        with self.write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(7234002, hashtext(:j))"),
                    {"j": execution.job_name},
                )
            same_job = (
                select(E.id, E.status, E.start_time, E.owner)
                .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
                .where(JobInstanceRow.job_name == execution.job_name)
            )
            rows = conn.execute(
                same_job.where(
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
            if busy >= max_running or ahead:
                return False
            if cooldown_seconds:
                last_start = conn.execute(
                    select(func.max(E.start_time))
                    .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
                    .where(JobInstanceRow.job_name == execution.job_name)
                ).scalar()
                last_start = _utc(last_start)
                if last_start and (utcnow() - last_start).total_seconds() < cooldown_seconds:
                    return False
            now = utcnow()
            n = conn.execute(
                update(E)
                .where(E.id == execution.id, E.status == BatchStatus.STARTING.value)
                .values(
                    status=BatchStatus.STARTED.value,
                    start_time=now,
                    last_updated=now,
                    owner=owner,
                    version=E.version + 1,
                )
            ).rowcount
            return n == 1

    def end_orphaned(
        self, execution: JobExecution, status: BatchStatus, description: str, action: str
    ) -> JobExecution:
        """End an execution nobody runs any more (its process or pods are gone): its
        running steps become FAILED and the execution ``status``, unless it moved."""
        self.fail_running_steps(execution.id, description)
        return self.transition(
            execution.id,
            status,
            allowed=(execution.status,),
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
                    exit_description=_text(description[:20000]),
                    end_time=utcnow(),
                    version=S.version + 1,
                )
            )


def _held_by(step: StepExecution) -> list[Any]:
    """The fence: the unit is still STARTED *and* still this process's incarnation.
    Opening a unit bumps ``incarnations``, so a process that another one resumed (a
    revived unit, a second pod for the same partition) is refused at its next write."""
    return [
        S.id == step.id,
        S.status == BatchStatus.STARTED.value,
        S.incarnations == step.incarnations,
    ]


# ---------------------------------------------------------------- row → record


def _partition(p: int) -> int | None:
    return None if p == NO_PARTITION else p


def _execution(
    r: JobExecutionRow | Row[Any], job_name: str, params: Sequence[JobParameter]
) -> JobExecution:
    return JobExecution(
        id=r.id,
        instance_id=r.instance_id,
        job_name=job_name,
        version=r.version,
        attempt=r.attempt,
        status=BatchStatus(r.status),
        exit_code=r.exit_code,
        exit_description=r.exit_description,
        created_at=_utc(r.created_at),
        start_time=_utc(r.start_time),
        end_time=_utc(r.end_time),
        last_updated=_utc(r.last_updated),
        owner=r.owner,
        source_dir=r.source_dir,
        job_spec=r.job_spec,
        context=decode_context(r.context),
        parameters=JobParameters(tuple(params)),
    )


def _step(r: StepExecutionRow | Row[Any]) -> StepExecution:
    return StepExecution(
        id=r.id,
        execution_id=r.execution_id,
        step_name=r.step_name,
        partition=_partition(r.partition),
        version=r.version,
        status=BatchStatus(r.status),
        read_count=r.read_count,
        write_count=r.write_count,
        filter_count=r.filter_count,
        read_skip_count=r.read_skip_count,
        process_skip_count=r.process_skip_count,
        write_skip_count=r.write_skip_count,
        commit_count=r.commit_count,
        rollback_count=r.rollback_count,
        total_count=r.total_count,
        start_time=_utc(r.start_time),
        end_time=_utc(r.end_time),
        last_updated=_utc(r.last_updated),
        exit_code=r.exit_code,
        exit_description=r.exit_description,
        context=decode_context(r.context),
        result=r.result,
        worker=r.worker,
        peak_memory_kb=r.peak_memory_kb,
        incarnations=r.incarnations,
        kind=r.kind,
    )


def _utc(value: Any) -> Any:
    """SQLite hands back naive datetimes; everything Baton shows is UTC-aware."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _is_connection_error(e: DBAPIError) -> bool:
    """The database is down, busy or not one (not: this statement is wrong)."""
    return is_unavailable(e)
