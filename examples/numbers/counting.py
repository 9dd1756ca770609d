"""Components of the count-numbers job."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from baton import SqlWriter, StepContext
from sqlalchemy import Column, Integer, MetaData, Table

numbers_table = Table(
    "numbers",
    MetaData(),
    Column("count_to", Integer, nullable=False),
    Column("n", Integer, nullable=False),
)


class CountReader:
    """Reads 1..count; the cursor (last n read) is saved at every checkpoint."""

    def __init__(self, params: Any):
        self.count = int(params["count"])
        self.pos = 0

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("count.pos", 0))

    def read(self) -> Any:
        if self.pos >= self.count:
            return None
        self.pos += 1
        return self.pos

    def update(self, context: MutableMapping[str, Any]) -> None:
        context["count.pos"] = self.pos

    def close(self) -> None:
        pass

    def total(self) -> int:
        return self.count - self.pos


class Slow:
    """Sleeps ``delayMs`` per item, then tags the item with the count it belongs to."""

    def __init__(self, params: Any):
        self.delay = int(params["delayMs"]) / 1000
        self.count = int(params["count"])

    def __call__(self, n: int) -> dict[str, Any]:
        if self.delay:
            time.sleep(self.delay)
        return {"count_to": self.count, "n": n}


class NumbersWriter(SqlWriter):
    """Into `numbers`, which has no key: a duplicate would show, not fail."""

    table = numbers_table
    create = True


def prepare(ctx: StepContext) -> dict[str, Any]:
    # made here, once, so that partitions loading side by side do not race to create it
    numbers_table.create(ctx.engine, checkfirst=True)
    ctx.context["expected"] = ctx.params["count"]
    return {"expected": ctx.params["count"]}


def check(ctx: StepContext) -> str:
    if ctx.context.get("expected") != ctx.params["count"]:
        raise AssertionError("the chain context lost 'expected'")
    return "ok"


class RangeReader(CountReader):
    """A partition's share of 1..count: partition ``index`` of ``count`` partitions
    (the args of ``partitions: {count: N}``), restartable the same way."""

    def __init__(self, params: Any, partition: Any):
        super().__init__(params)
        parts = int(partition["count"])
        per = -(-self.count // parts)
        self.first = int(partition["index"]) * per
        self.count = min(self.first + per, self.count)
        self.pos = self.first

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("count.pos", self.first))

    def total(self) -> int:
        return self.count - self.pos


def check_partition(ctx: StepContext) -> int:
    """A near-empty unit of work (for fan-out overhead measurements)."""
    return int(ctx.partition["index"])
