"""Partitions of a step (planned once per instance, added at run time), step results
and skipped items: what a fan-out, a reduce and an operator's listing read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select

from baton.core.entities import SkippedItem
from baton.core.status import BatchStatus, UnitKind
from baton.repository.mapping import MAX_ID, jsonable, partition_of, utcnow
from baton.repository.schema import (
    JobExecutionRow,
    PartitionRow,
    SkippedItemRow,
    StepExecutionRow,
)
from baton.repository.session import RepositorySession

E = JobExecutionRow
S = StepExecutionRow


class Partitions(RepositorySession):
    """Partition rows, results and skips."""

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
            top = _top(conn, instance_id, step_name)
            if top is not None:
                return top + 1
            # Row -1 marks the step as planned, so zero declared partitions is a plan too.
            _insert(conn, instance_id, step_name, -1, [None, *args], None)
            return len(args)

    def add_partitions(
        self, instance_id: int, step_name: str, args: Sequence[Any], added_by: str
    ) -> list[int]:
        """Append partitions to a step (dynamic work); return their indices."""
        with self.write() as conn:
            top = _top(conn, instance_id, step_name)
            return _insert(
                conn, instance_id, step_name, 0 if top is None else top + 1, args, added_by
            )

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
                    S.kind == UnitKind.STEP.value,
                    S.status == BatchStatus.COMPLETED.value,
                )
                .group_by(S.partition)
            )
            rows = conn.execute(
                select(S.result).where(S.id.in_(latest)).order_by(S.partition)
            ).all()
            return [r[0] for r in rows]

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
                partition_of(r[2]),
                r[0].phase,
                r[0].item,
                r[0].error,
                r[0].created_at,
            )
            for r in rows
        ]


def _top(conn: Connection, instance_id: int, step_name: str) -> int | None:
    """The largest partition index of a step in the instance (None: never planned)."""
    top = conn.execute(
        select(func.max(PartitionRow.idx)).where(
            PartitionRow.instance_id == instance_id, PartitionRow.step_name == step_name
        )
    ).scalar()
    return None if top is None else int(top)


def _insert(
    conn: Connection,
    instance_id: int,
    step_name: str,
    first: int,
    args: Sequence[Any],
    added_by: str | None,
) -> list[int]:
    """Partition rows ``first``, ``first + 1``, ... with these args; their indices."""
    now = utcnow()
    rows = [
        {
            "instance_id": instance_id,
            "step_name": step_name,
            "idx": first + i,
            "args": jsonable(a),
            "added_by": added_by,
            "created_at": now,
        }
        for i, a in enumerate(args)
    ]
    if rows:
        conn.execute(insert(PartitionRow), rows)
    return [r["idx"] for r in rows]
