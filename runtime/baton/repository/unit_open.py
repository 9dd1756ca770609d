"""The one query that opens a unit: what a step pod reads before its work.

Every pod of a partitioned step is a short process, so each round trip it makes is
paid once per partition. One SELECT therefore returns the execution row, its job
name, the partition's args, the schema revision (the check ``migrate`` would make),
the parameters (aggregated as JSON) and the unit's step row to resume or inherit
from (this execution's row first, else the latest earlier attempt's); the step row is
then written in one more statement (INSERT or UPDATE ... RETURNING).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import JSON, ColumnElement, Row, Select, and_, case, func, null, select, type_coerce

from baton.core.parameters import JobParameter, ParamType, parse_value
from baton.core.status import UnitKind
from baton.repository.engine import version_table
from baton.repository.schema import (
    NO_PARTITION,
    JobExecutionRow,
    JobInstanceRow,
    JobParameterRow,
    PartitionRow,
    StepExecutionRow,
)

E = JobExecutionRow
P = JobParameterRow
STEP_PREFIX = "step_"  # the step row's columns, labelled apart from the execution's


@dataclass(frozen=True)
class UnitRow:
    """One unit's read, decoded: the execution row (attributes as ``execution_of``
    reads them), its parameters, the partition args and the step row found (or None)."""

    execution: Row[Any]
    parameters: tuple[JobParameter, ...]
    partition_args: Any
    step: SimpleNamespace | None


def unit_query(
    dialect: str, execution_id: int, step_name: str, partition: int | None, kind: str
) -> Select[Any]:
    """The SELECT (one row, none when there is no such execution) for ``decode``."""
    part = NO_PARTITION if partition is None else partition
    s = StepExecutionRow.__table__.alias("unit_step")
    e2 = E.__table__.alias("unit_attempt")
    same = and_(s.c.step_name == step_name, s.c.partition == part, s.c.kind == kind)
    if kind == UnitKind.STEP:  # this execution's row, or an earlier attempt's
        scope = and_(e2.c.instance_id == E.instance_id, e2.c.id <= E.id)
    else:  # compensations and callbacks never inherit a context
        scope = s.c.execution_id == E.id
    args: ColumnElement[Any] = null()
    if kind == UnitKind.STEP and partition is not None:
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
    steps = s.join(e2, e2.c.id == s.c.execution_id)
    return (
        select(
            E.__table__,
            JobInstanceRow.job_name,
            args.label("partition_args"),
            revision.label("schema_revision"),
            _parameters(dialect).label("parameters_json"),
            *(c.label(STEP_PREFIX + c.key) for c in s.c),
        )
        .join(JobInstanceRow, JobInstanceRow.id == E.instance_id)
        .outerjoin(steps, and_(same, scope))
        .where(E.id == execution_id)
        .order_by(case((s.c.execution_id == E.id, 0), else_=1), s.c.id.desc())
        .limit(1)
    )


def _parameters(dialect: str) -> ColumnElement[Any]:
    """The execution's parameters as one JSON array of [name, type, value, identifying]."""
    if dialect == "postgresql":
        agg = func.json_agg(func.json_build_array(P.name, P.type, P.value, P.identifying))
    else:
        agg = func.json_group_array(func.json_array(P.name, P.type, P.value, P.identifying))
    return type_coerce(select(agg).where(P.execution_id == E.id).scalar_subquery(), JSON)


def decode(row: Row[Any]) -> UnitRow:
    """The parts of a ``unit_query`` row."""
    raw = row.parameters_json
    items = json.loads(raw) if isinstance(raw, str) else raw or []
    parameters = tuple(
        JobParameter(name, ParamType(kind), parse_value(ParamType(kind), value), bool(ident))
        for name, kind, value, ident in items
    )
    values = row._mapping
    step = None
    if values[STEP_PREFIX + "id"] is not None:
        step = SimpleNamespace(
            **{k[len(STEP_PREFIX) :]: v for k, v in values.items() if k.startswith(STEP_PREFIX)}
        )
    return UnitRow(row, parameters, row.partition_args, step)
