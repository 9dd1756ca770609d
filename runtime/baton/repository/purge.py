"""``baton purge``: delete old job instances with everything keyed by them, in short
batches, with plain SQL (no ORM objects), on SQLite and PostgreSQL.

The instances are read by id ranges (keyset: ``id > last seen``), ``scan`` at a time,
with the few facts the rules of :mod:`baton.core.retention` need, so memory does not
grow with the repository. Each batch is one short write transaction that first checks
its instances again under lock (PostgreSQL: the instance rows ``FOR UPDATE``, which a
launch of the instance also takes; SQLite: the write lock), so an instance restarted
since it was read is kept. A running checkpoint therefore waits for at most one batch
(on SQLite the purge then gives it its turn, see SQLITE_TURN).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, func, select, type_coerce
from sqlalchemy.orm import aliased

from baton.core.retention import Candidate, Kept, PurgeRule, batches, verdict
from baton.core.status import RUNNING, BatchStatus
from baton.repository.mapping import utc
from baton.repository.schema import (
    JobExecutionRow,
    JobInstanceRow,
    JobParameterRow,
    PartitionRow,
    SkippedItemRow,
    StepExecutionRow,
    Timestamp,
)
from baton.repository.session import RepositorySession

N, E, S = JobInstanceRow, JobExecutionRow, StepExecutionRow
K, P, Q = SkippedItemRow, JobParameterRow, PartitionRow

DEFAULT_BATCH = 100  # instances per transaction
DEFAULT_BATCH_ROWS = 5_000  # step executions + skipped items per transaction
# SQLite has one write lock and its busy handler polls for it up to every 100 ms: after
# each batch the purge waits that long, so a checkpoint that waited for this batch gets
# the lock before the next batch does (PostgreSQL: row locks, no wait needed).
SQLITE_TURN = 0.1
# What the report counts, in the order rows are deleted (children first).
TABLES = ("skippedItems", "steps", "parameters", "executions", "partitions", "instances")


@dataclass(frozen=True)
class PurgeOptions:
    older_than: dt.timedelta
    keep_last: int = 0
    job: str | None = None
    dry_run: bool = False
    include_restartable: bool = False
    batch: int = DEFAULT_BATCH
    batch_rows: int = DEFAULT_BATCH_ROWS


@dataclass
class PurgeReport:
    """What was (or, dry, would be) deleted; ``to_json`` is the CLI's public shape."""

    cutoff: dt.datetime
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    kept: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in Kept})
    batches: int = 0
    largest_batch: int = 0  # rows (steps + skipped items) of the heaviest batch

    def to_json(self) -> dict[str, Any]:
        return {
            **self.deleted,
            "batches": self.batches,
            "kept": dict(self.kept),
            "cutoff": self.cutoff.isoformat(),
            "dryRun": self.dry_run,
        }


def _facts(where: ColumnElement[bool]) -> Any:
    """Per instance: its newest execution's status, its last activity, whether any
    execution runs, and its weight (step executions + skipped items)."""
    e1, e2, e3 = aliased(E), aliased(E), aliased(E)
    newest = select(e1.status).where(e1.instance_id == N.id).order_by(e1.id.desc()).limit(1)
    last_status = newest.scalar_subquery()
    ended = type_coerce(func.coalesce(e2.end_time, e2.last_updated), Timestamp)
    activity = select(func.max(ended)).where(e2.instance_id == N.id).scalar_subquery()
    running = exists().where(e3.instance_id == N.id, e3.status.in_([s.value for s in RUNNING]))
    s1, s2, e4, e5 = aliased(S), aliased(S), aliased(E), aliased(E)
    steps = select(func.count()).select_from(s1).join(e4, s1.execution_id == e4.id)
    skips = select(func.count()).select_from(K).join(s2, K.step_execution_id == s2.id)
    skips = skips.join(e5, s2.execution_id == e5.id)
    return select(
        N.id,
        N.namespace,
        N.job_name,
        N.created_at,
        last_status.label("last_status"),
        type_coerce(activity, Timestamp).label("activity"),
        running.label("running"),
        steps.where(e4.instance_id == N.id).scalar_subquery().label("steps"),
        skips.where(e5.instance_id == N.id).scalar_subquery().label("skips"),
    ).where(where)


def _candidate(row: Any) -> Candidate:
    return Candidate(
        id=row.id,
        namespace=row.namespace,
        job=row.job_name,
        last_status=BatchStatus(row.last_status) if row.last_status else None,
        last_activity=utc(row.activity or row.created_at),
        running=bool(row.running),
        rows=int(row.steps or 0) + int(row.skips or 0),
    )


def _keep_from(conn: Connection, keep_last: int, job: str | None) -> dict[tuple[str, str], int]:
    """For each (namespace, job) with more than ``keep_last`` instances, the id of its
    ``keep_last``-th newest: one query per job, memory per job, not per instance."""
    if keep_last <= 0:
        return {}
    groups = select(N.namespace, N.job_name).group_by(N.namespace, N.job_name)
    if job is not None:
        groups = groups.where(N.job_name == job)
    groups = groups.having(func.count() > keep_last)
    found: dict[tuple[str, str], int] = {}
    for ns, name in conn.execute(groups).all():
        nth = (
            select(N.id)
            .where(N.namespace == ns, N.job_name == name)
            .order_by(N.id.desc())
            .offset(keep_last - 1)
            .limit(1)
        )
        found[(ns, name)] = conn.execute(nth).scalar_one()
    return found


def _count(conn: Connection, ids: Sequence[int]) -> dict[str, int]:
    """The rows a deletion of these instances would delete (the dry run's answer)."""
    executions = select(E.id).where(E.instance_id.in_(ids))
    step_ids = select(S.id).where(S.execution_id.in_(executions))

    def n(q: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one())

    return {
        "skippedItems": n(select(K.id).where(K.step_execution_id.in_(step_ids))),
        "steps": n(step_ids),
        "parameters": n(select(P.name).where(P.execution_id.in_(executions))),
        "executions": n(executions),
        "partitions": n(select(Q.idx).where(Q.instance_id.in_(ids))),
        "instances": len(ids),
    }


def _delete(conn: Connection, ids: Sequence[int]) -> dict[str, int]:
    """Delete the instances and every row keyed by them, children first (without
    relying on ON DELETE CASCADE, so the counts are the rows deleted)."""
    executions = select(E.id).where(E.instance_id.in_(ids))
    step_ids = select(S.id).where(S.execution_id.in_(executions))
    statements = (
        delete(K).where(K.step_execution_id.in_(step_ids)),
        delete(S).where(S.execution_id.in_(executions)),
        delete(P).where(P.execution_id.in_(executions)),
        delete(E).where(E.instance_id.in_(ids)),
        delete(Q).where(Q.instance_id.in_(ids)),
        delete(N).where(N.id.in_(ids)),
    )
    return {key: conn.execute(s).rowcount for key, s in zip(TABLES, statements, strict=True)}


def _recheck(conn: Connection, chosen: list[Candidate], rule: PurgeRule) -> list[int]:
    """The chosen instances that the rules still let go, read again inside the
    deleting transaction (locked on PostgreSQL), so a restart in between keeps one."""
    ids = [c.id for c in chosen]
    if conn.dialect.name == "postgresql":
        conn.execute(select(N.id).where(N.id.in_(ids)).order_by(N.id).with_for_update()).all()
    now = [_candidate(r) for r in conn.execute(_facts(N.id.in_(ids))).all()]
    return sorted(c.id for c in now if verdict(c, rule) is None)


def purge(
    repo: RepositorySession, options: PurgeOptions, *, now: dt.datetime | None = None
) -> PurgeReport:
    """Delete (or with ``dry_run`` count) the instances the rules let go."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - options.older_than
    report = PurgeReport(cutoff=cutoff, dry_run=options.dry_run)
    with repo._read() as session:
        keep_from = _keep_from(session.connection(), options.keep_last, options.job)
    rule = PurgeRule(cutoff, options.include_restartable, options.keep_last, keep_from)
    after = 0
    while True:
        where = N.id > after
        if options.job is not None:
            where = where & (N.job_name == options.job)
        with repo._read() as session:
            q = _facts(where).order_by(N.id).limit(max(1, options.batch))
            scanned = [_candidate(r) for r in session.execute(q).all()]
        if not scanned:
            return report
        after = scanned[-1].id
        chosen = []
        for c in scanned:
            why = verdict(c, rule)
            if why is None:
                chosen.append(c)
            else:
                report.kept[why.value] += 1
        for group in batches(chosen, options.batch, options.batch_rows):
            _apply(repo, group, rule, report)
            if repo.dialect == "sqlite" and not options.dry_run:
                time.sleep(SQLITE_TURN)


def _apply(
    repo: RepositorySession, group: list[Candidate], rule: PurgeRule, r: PurgeReport
) -> None:
    """One batch: one short transaction (a read one for a dry run)."""
    if r.dry_run:
        with repo._read() as session:
            counts = _count(session.connection(), [c.id for c in group])
    else:
        with repo.write() as conn:
            ids = _recheck(conn, group, rule)
            counts = _delete(conn, ids) if ids else dict.fromkeys(TABLES, 0)
    if not counts["instances"]:
        return
    r.batches += 1
    r.largest_batch = max(r.largest_batch, counts["steps"] + counts["skippedItems"])
    for key, n in counts.items():
        r.deleted[key] += n
