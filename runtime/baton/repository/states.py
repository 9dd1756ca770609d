"""The state of many executions in one transaction: what the operator mirrors every
tick for all its running executions (their rows, parameters, step executions, the
earlier attempts' latest steps and the instances' partition counts).

Read one execution at a time, that is four queries per execution per tick; here it is
a fixed number of statements per tick (per ``CHUNK`` executions), whatever the number
of executions, so the database's load stays flat as executions are added. Imported
only when called (``JobRepository.execution_states``): a step process never needs it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from baton.core.entities import JobExecution, StepExecution
from baton.core.status import UnitKind
from baton.repository.executions import ExecutionQueries
from baton.repository.mapping import MAX_ID, execution_of, partition_of, step_of
from baton.repository.schema import (
    JobExecutionRow,
    JobInstanceRow,
    PartitionRow,
    StepExecutionRow,
)

E = JobExecutionRow
S = StepExecutionRow
# Executions per set of statements: bounds the size of an IN list (SQLite allows 32766
# bound parameters; PostgreSQL plans a long list slowly).
CHUNK = 1000


@dataclass(frozen=True)
class ExecutionState:
    """One execution as the repository holds it: the same reads as ``get_execution``,
    ``step_executions``, ``previous_steps`` and ``partition_counts``."""

    execution: JobExecution
    steps: tuple[StepExecution, ...] = ()
    # (step, partition) → its latest step execution in earlier attempts of the instance
    previous: Mapping[tuple[str, int | None], StepExecution] = field(default_factory=dict)
    # partitioned step → number of partitions planned for the instance
    partitions: Mapping[str, int] = field(default_factory=dict)


def execution_states(
    repo: ExecutionQueries, execution_ids: Iterable[int]
) -> dict[int, ExecutionState]:
    """The state of each execution that exists, by id (unknown ids are left out), read
    in one transaction of five statements per ``CHUNK`` ids."""
    ids = sorted({i for i in execution_ids if isinstance(i, int) and 0 < i <= MAX_ID})
    out: dict[int, ExecutionState] = {}
    with repo._read() as session:
        for chunk in _chunks(ids, CHUNK):
            out.update(_states(repo, session, chunk))
    return out


def _states(
    repo: ExecutionQueries, session: Session, ids: Sequence[int]
) -> dict[int, ExecutionState]:
    rows = session.execute(
        select(E, JobInstanceRow.job_name)
        .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
        .where(E.id.in_(ids))
    ).all()
    params = repo._params(session, [r[0].id for r in rows])
    executions = [execution_of(r[0], r[1], params.get(r[0].id, ())) for r in rows]
    steps: dict[int, list[StepExecution]] = {}
    for s in session.execute(select(S).where(S.execution_id.in_(ids)).order_by(S.id)).scalars():
        steps.setdefault(s.execution_id, []).append(step_of(s))
    previous = _previous(session, ids)
    partitions = _partitions(session, ids)
    return {
        e.id: ExecutionState(
            execution=e,
            steps=tuple(steps.get(e.id, ())),
            previous=previous.get(e.id, {}),
            partitions=partitions.get(e.instance_id, {}),
        )
        for e in executions
    }


def _previous(
    session: Session, ids: Sequence[int]
) -> dict[int, dict[tuple[str, int | None], StepExecution]]:
    """For each execution, the latest step execution of every (step, partition) in the
    earlier executions of its instance (what ``previous_steps`` reads for one)."""
    cur = aliased(E)
    latest = (
        select(cur.id.label("for_id"), func.max(S.id).label("step_id"))
        .join(E, (E.instance_id == cur.instance_id) & (E.id < cur.id))
        .join(S, S.execution_id == E.id)
        .where(cur.id.in_(ids), S.kind == UnitKind.STEP.value)
        .group_by(cur.id, S.step_name, S.partition)
        .subquery()
    )
    out: dict[int, dict[tuple[str, int | None], StepExecution]] = {}
    found = session.execute(select(latest.c.for_id, S).join(S, S.id == latest.c.step_id)).all()
    for for_id, r in found:
        out.setdefault(for_id, {})[(r.step_name, partition_of(r.partition))] = step_of(r)
    return out


def _partitions(session: Session, ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Partition counts of the instances of these executions, by instance id."""
    P = PartitionRow
    instances = select(E.instance_id).where(E.id.in_(ids))
    rows = session.execute(
        select(P.instance_id, P.step_name, func.max(P.idx))
        .where(P.instance_id.in_(instances))
        .group_by(P.instance_id, P.step_name)
    ).all()
    out: dict[int, dict[str, int]] = {}
    for instance_id, name, top in rows:
        out.setdefault(instance_id, {})[name] = int(top) + 1
    return out


def _chunks(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
