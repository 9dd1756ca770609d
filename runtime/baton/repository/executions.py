"""Reading executions: job executions with their parameters, their step executions,
instances, per-job counts and history (Spring Batch's JobExplorer queries)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.orm import Session

from baton.core.entities import JobExecution, JobInstance, StepExecution
from baton.core.errors import NoSuchExecution
from baton.core.parameters import JobParameter, ParamType, parse_value
from baton.core.status import BatchStatus, UnitKind
from baton.repository.mapping import (
    MAX_ID,
    check_id,
    execution_of,
    partition_of,
    step_of,
)
from baton.repository.schema import (
    JobExecutionRow,
    JobInstanceRow,
    JobParameterRow,
    StepExecutionRow,
)
from baton.repository.session import RepositorySession

E = JobExecutionRow
S = StepExecutionRow


class ExecutionQueries(RepositorySession):
    """Read-only queries of executions and step executions."""

    def get_execution(self, execution_id: int) -> JobExecution:
        check_id(execution_id)
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
        namespace: str | None = None,
    ) -> list[JobExecution]:
        """Newest first; ``namespace``: only the instances of that namespace (None: all)."""
        conds = []
        if job is not None:
            conds.append(JobInstanceRow.job_name == job)
        if namespace is not None:
            conds.append(JobInstanceRow.namespace == namespace)
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
        return [execution_of(r[0], r[1], params.get(r[0].id, ())) for r in rows]

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

    def owned_execution(self, job: str, owner: str, namespace: str = "") -> JobExecution | None:
        """The newest execution of ``job`` in ``namespace`` recorded with ``owner`` (the
        operator's tag of one BatchExecution launch), by the owner index: one read
        however long the job's history."""
        return self._newest(namespace, job, E.owner == owner)

    def last_execution(self, job: str, key: str, namespace: str = "") -> JobExecution | None:
        """The newest execution of the instance (namespace, job, key), if any."""
        return self._newest(namespace, job, JobInstanceRow.job_key == key)

    def _newest(self, namespace: str, job: str, where: Any) -> JobExecution | None:
        found = self._executions(
            and_(JobInstanceRow.namespace == namespace, JobInstanceRow.job_name == job, where),
            limit=1,
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

    # ------------------------------------------------------------ step executions

    def step_executions(self, execution_id: int) -> list[StepExecution]:
        if not 0 < execution_id <= MAX_ID:
            return []
        with self._read() as conn:
            rows = conn.execute(
                select(S).where(S.execution_id == execution_id).order_by(S.id)
            ).scalars()
            return [step_of(r) for r in rows]

    def get_step(self, step_execution_id: int) -> StepExecution:
        check_id(step_execution_id, "step execution")
        with self._read() as conn:
            row = conn.execute(select(S).where(S.id == step_execution_id)).scalar_one_or_none()
            if row is None:
                raise NoSuchExecution(f"no step execution with id {step_execution_id}")
            return step_of(row)

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
                    S.kind == UnitKind.STEP.value,
                )
                .group_by(S.step_name, S.partition)
            )
            rows = conn.execute(select(S).where(S.id.in_(latest))).scalars()
            return {(r.step_name, partition_of(r.partition)): step_of(r) for r in rows}

    def history(self, job: str, limit: int = 200) -> list[tuple[JobExecution, StepExecution]]:
        """Step executions of a job's executions, newest first: who ran what, where."""
        executions = {e.id: e for e in self.executions(job=job, limit=limit)}
        if not executions:
            return []
        with self._read() as conn:
            rows = conn.execute(
                select(S).where(S.execution_id.in_(list(executions))).order_by(S.id.desc())
            ).scalars()
            return [(executions[r.execution_id], step_of(r)) for r in rows]
