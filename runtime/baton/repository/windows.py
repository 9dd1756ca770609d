"""A schedule's windows as the repository knows them: one query per tick.

A function over the repository rather than a role of ``JobRepository``: the step
processes load the facade, and must not load the schedule engine with it."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select

from baton.core.status import BatchStatus
from baton.repository.schema import JobExecutionRow, JobInstanceRow, JobParameterRow
from baton.repository.session import RepositorySession
from baton.schedule.keys import WindowRecord

E = JobExecutionRow
P = JobParameterRow
JI = JobInstanceRow

# A COMPLETED instance decides a window, whatever other instances of it say (the same
# window launched with other parameters: exactly once means once COMPLETED).
_RANK = {BatchStatus.COMPLETED: 0}


def window_records(
    repo: RepositorySession, namespace: str, job: str, parameter: str, keys: Collection[str]
) -> dict[str, WindowRecord]:
    """key → the window's instance (its last execution, its number of executions):
    the instances of ``job`` in ``namespace`` whose identifying ``parameter`` has one
    of ``keys`` as its canonical text. One statement. Where two instances share a key
    (the schedule's other parameters changed), a COMPLETED one wins, else the newest."""
    if not keys:
        return {}
    per_instance = (
        select(
            P.value.label("key"),
            func.max(E.id).label("last"),
            func.count(E.id).label("n"),
        )
        .join(E, E.id == P.execution_id)
        .join(JI, JI.id == E.instance_id)
        .where(
            JI.namespace == namespace,
            JI.job_name == job,
            P.name == parameter,
            P.identifying.is_(True),
            P.value.in_(sorted(keys)),
        )
        .group_by(P.value, E.instance_id)
        .subquery()
    )
    with repo._read() as session:
        rows = session.execute(
            select(per_instance.c.key, per_instance.c.n, E.id, E.status).join(
                E, E.id == per_instance.c.last
            )
        ).all()
    out: dict[str, WindowRecord] = {}
    for key, n, last, status in sorted(rows, key=lambda r: r[2]):
        record = WindowRecord(BatchStatus(status), int(n), int(last))
        kept = out.get(key)
        if kept is None or _RANK.get(record.status, 1) <= _RANK.get(kept.status, 1):
            out[key] = record
    return out
