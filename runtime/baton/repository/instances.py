"""Launching: the instance a launch's parameters identify, and its next execution,
created under the restart rules (``baton.core.restart``) in one serialized transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Numeric, Row, cast, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from baton.core.codec import encode_context
from baton.core.entities import JobExecution
from baton.core.errors import (
    InstanceCompensated,
    InvalidContext,
    InvalidDefinition,
    InvalidParameters,
    JobExecutionAlreadyRunning,
    JobInstanceAlreadyComplete,
    JobRestartRejected,
    LaunchRejected,
)
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.core.restart import LaunchVerdict, launch_verdict, verdict_message
from baton.core.status import BatchStatus
from baton.repository.engine import has_password
from baton.repository.executions import ExecutionQueries
from baton.repository.mapping import storable_text, utcnow
from baton.repository.schema import JobExecutionRow, JobInstanceRow, JobParameterRow

E = JobExecutionRow

_REJECTIONS: dict[LaunchVerdict, type[LaunchRejected]] = {
    LaunchVerdict.ALREADY_COMPLETE: JobInstanceAlreadyComplete,
    LaunchVerdict.ALREADY_RUNNING: JobExecutionAlreadyRunning,
    LaunchVerdict.ABANDONED: JobRestartRejected,
    LaunchVerdict.PREVENT_RESTART: JobRestartRejected,
    LaunchVerdict.UNKNOWN_STATE: JobRestartRejected,
    LaunchVerdict.COMPENSATED: InstanceCompensated,
}


class Instances(ExecutionQueries):
    """Job instances and the launch of their executions."""

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
        namespace: str = "",
    ) -> JobExecution:
        """Create the next JobExecution of the instance these parameters identify,
        applying the restart table atomically (the instance row is locked).
        ``context`` seeds the job context; on a restart what the instance's steps
        already put there wins. ``next_id`` (the incrementer, ``run.id``): add it, one
        past the largest the job used, inside this transaction, which is serialized
        per job, so concurrent start-next launches each get their own instance.
        ``namespace``: the Kubernetes namespace of the launch ('' locally); instances,
        restart rules and the incrementer are per (namespace, job).

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
                        namespace,
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
        namespace: str,
        job_name: str,
        job_spec: dict[str, Any],
        params: JobParameters,
        prevent_restart: bool,
        source_dir: str | None,
        owner: str | None,
        seed: dict[str, Any],
        next_id: str | None,
    ) -> int:
        if conn.dialect.name == "postgresql":
            # Launches of one job serialize (SQLite's BEGIN IMMEDIATE already does):
            # the next run.id and the instance lookup see every earlier launch.
            conn.execute(
                text("SELECT pg_advisory_xact_lock(7234003, hashtext(:j))"),
                {"j": f"{namespace}/{job_name}"},
            )
        if next_id is not None:
            run_id = self._next_run_id(conn, namespace, job_name, next_id)
            params = params.with_param(JobParameter(next_id, ParamType.INT, run_id, True))
        instance_id, last = self._instance(conn, namespace, job_name, params.key())
        verdict = launch_verdict(
            BatchStatus(last.status) if last else None, prevent_restart=prevent_restart
        )
        if verdict not in (LaunchVerdict.NEW_INSTANCE, LaunchVerdict.RESTART):
            raise _REJECTIONS[verdict](
                verdict_message(verdict, job_name, last.id if last else None)
            )
        return self._insert_execution(
            conn, instance_id, last, job_spec, params, source_dir, owner, seed
        )

    def _instance(
        self, conn: Connection, namespace: str, job_name: str, key: str
    ) -> tuple[int, Row[Any] | None]:
        """The instance (namespace, job, key), created if new, and its last execution."""
        q = select(JobInstanceRow.id).where(
            JobInstanceRow.namespace == namespace,
            JobInstanceRow.job_name == job_name,
            JobInstanceRow.job_key == key,
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        instance_id = conn.execute(q).scalar()
        if instance_id is None:
            created: int = conn.execute(
                insert(JobInstanceRow).values(
                    namespace=namespace, job_name=job_name, job_key=key, created_at=utcnow()
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            return created, None
        last = conn.execute(
            select(E.id, E.status, E.attempt, E.context)
            .where(E.instance_id == instance_id)
            .order_by(E.id.desc())
            .limit(1)
        ).first()
        return instance_id, last

    @staticmethod
    def _insert_execution(
        conn: Connection,
        instance_id: int,
        last: Row[Any] | None,
        job_spec: dict[str, Any],
        params: JobParameters,
        source_dir: str | None,
        owner: str | None,
        seed: dict[str, Any],
    ) -> int:
        """A new STARTING execution with its parameters; it inherits the last one's context."""
        now = utcnow()
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

    def next_run_id(self, job_name: str, param: str = "run.id", namespace: str = "") -> int:
        """The incrementer: one more than the largest ``run.id`` any instance of the job
        in ``namespace`` used (a launch with ``next_id`` takes it inside its own
        transaction instead)."""
        with self._read() as session:
            return self._next_run_id(session.connection(), namespace, job_name, param)

    def _next_run_id(self, conn: Connection, namespace: str, job_name: str, param: str) -> int:
        top = conn.execute(
            select(func.max(cast(JobParameterRow.value, Numeric)))
            .join(E, E.id == JobParameterRow.execution_id)
            .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
            .where(
                JobInstanceRow.namespace == namespace,
                JobInstanceRow.job_name == job_name,
                JobParameterRow.name == param,
                JobParameterRow.type == ParamType.INT.value,
            )
        ).scalar()
        return int(top or 0) + 1


def _check_parameters(params: JobParameters) -> None:
    """Refuse parameters that one backend or the other cannot store as given."""
    for p in params.items:
        for what, value in (("name", p.name), ("value", p.text)):
            problem = _text_problem(value)
            if problem:
                raise InvalidParameters(
                    f"parameter {storable_text(p.name)!r}: its {what} {problem}"
                )
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
