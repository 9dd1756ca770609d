"""Components of the nightly job: the context flows down the chain, `load` spans
several incarnations when it runs past its time budget."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from baton import SqlWriter, StepContext
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

rows_table = Table(
    "nightly_rows",
    MetaData(),
    Column("batch", String(40), nullable=False),
    Column("n", Integer, nullable=False),
)


def extract(ctx: StepContext) -> dict[str, Any]:
    """Name the batch: every later step finds it in the job context."""
    rows_table.create(ctx.engine, checkfirst=True)
    ctx.context["batch"] = f"run-{ctx.params.get('run.id', 0)}"
    ctx.context["rows"] = int(ctx.params["rows"])
    return {"batch": ctx.context["batch"]}


class BatchReader:
    """1..rows, restartable: the position is saved at every checkpoint."""

    def __init__(self, params: Any):
        self.rows = int(params["rows"])
        self.pos = 0

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("pos", 0))

    def read(self) -> int | None:
        if self.pos >= self.rows:
            return None
        self.pos += 1
        return self.pos

    def update(self, context: MutableMapping[str, Any]) -> None:
        context["pos"] = self.pos

    def close(self) -> None:
        pass

    def total(self) -> int:
        return self.rows - self.pos


class Stamp:
    """Tags each row with the batch `extract` named (read from the job context)."""

    def __init__(self, params: Any, context: MutableMapping[str, Any]):
        self.delay = int(params["delayMs"]) / 1000
        self.batch = str(context["batch"])

    def __call__(self, n: int) -> dict[str, Any]:
        if self.delay:
            time.sleep(self.delay)
        return {"batch": self.batch, "n": n}


class RowsWriter(SqlWriter):
    table = rows_table


def audit(ctx: StepContext) -> dict[str, Any]:
    ctx.context["audited"] = True
    return {"batch": ctx.context["batch"], "expected": ctx.context["rows"]}


def report(ctx: StepContext) -> dict[str, Any]:
    """What the chain left behind: the context of every step, the rows loaded."""
    with ctx.engine.connect() as c:
        loaded = c.execute(
            select(func.count(), func.count(func.distinct(rows_table.c.n))).where(
                rows_table.c.batch == ctx.context["batch"]
            )
        ).one()
    if not ctx.context.get("audited"):
        raise AssertionError("the audit's context entry did not reach the report")
    if tuple(loaded) != (ctx.context["rows"], ctx.context["rows"]):
        raise AssertionError(f"expected {ctx.context['rows']} distinct rows, found {tuple(loaded)}")
    return {"batch": ctx.context["batch"], "rows": loaded[0]}
