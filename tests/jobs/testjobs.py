"""Components of the test jobs. Failures and slowness are injected with environment
variables so that a restart (which reuses the snapshotted parameters) can run clean."""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import Any

import baton
from baton import SqlWriter, StepContext
from sqlalchemy import Column, Integer, MetaData, String, Table

out_table = Table(
    "out", MetaData(), Column("n", Integer, nullable=False), Column("tag", String(20))
)


class Transient(Exception):
    pass


class NumbersReader:
    """Reads {"n": 1} .. {"n": count}; the cursor is the last n read."""

    def __init__(self, params: Any):
        self.count = int(params["count"])
        self.pos = 0
        self.opened_at: int | None = None

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("numbers.pos", 0))
        self.opened_at = self.pos
        reads_log = os.environ.get("BATON_TEST_READS_LOG")
        if reads_log:
            with open(reads_log, "a") as f:
                f.write(f"open {self.pos}\n")

    def read(self) -> Any:
        if os.environ.get("BATON_TEST_READ_FAIL_AT") == str(self.pos + 1):
            self.pos += 1
            raise ValueError(f"unreadable record {self.pos}")
        if self.pos >= self.count:
            return None
        self.pos += 1
        return {"n": self.pos}

    def update(self, context: MutableMapping[str, Any]) -> None:
        context["numbers.pos"] = self.pos

    def close(self) -> None:
        pass

    def total(self) -> int:
        return self.count - self.pos


def process(item: dict[str, Any]) -> dict[str, Any] | None:
    n = item["n"]
    if os.environ.get("BATON_TEST_FAIL_AT") == str(n):
        raise RuntimeError(f"injected failure at item {n}")
    bad = os.environ.get("BATON_TEST_BAD", "")
    if bad and str(n) in bad.split(","):
        raise ValueError(f"bad item {n}")
    every = int(os.environ.get("BATON_TEST_FILTER_EVERY") or 0)
    if every and n % every == 0:
        return None
    delay = float(os.environ.get("BATON_TEST_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    return {"n": n, "tag": f"t{n % 7}"}


_flaky_seen: dict[int, int] = {}


def flaky(item: dict[str, Any]) -> dict[str, Any]:
    """Fails twice with Transient for every 5th item, then succeeds."""
    n = item["n"]
    if n % 5 == 0 and _flaky_seen.get(n, 0) < 2:
        _flaky_seen[n] = _flaky_seen.get(n, 0) + 1
        raise Transient(f"transient {n}")
    return {"n": n, "tag": "flaky"}


class ChunkProcess:
    """``process`` as a chunk processor: one call for the chunk, which fails as a whole
    when any item does (as a vectorised transform would); filtered items are left out."""

    item = staticmethod(process)

    def __init__(self) -> None:
        self.calls: list[int] = []  # the size of each call's chunk

    def process_chunk(self, items: list[Any]) -> list[Any]:
        self.calls.append(len(items))
        return [out for out in map(self.item, items) if out is not None]


class ChunkFlaky(ChunkProcess):
    item = staticmethod(flaky)


class OutWriter(SqlWriter):
    """Into table `out`, which has no key: duplicates would show, not fail."""

    table = out_table
    create = True


class PickyWriter(OutWriter):
    """Refuses items whose n is listed in BATON_TEST_WRITE_BAD (a skippable error)."""

    def write(self, items: list[Any]) -> None:
        bad = {int(x) for x in os.environ.get("BATON_TEST_WRITE_BAD", "").split(",") if x}
        for i in items:
            if i["n"] in bad:
                raise ValueError(f"cannot write {i['n']}")
        super().write(items)


def prepare(ctx: StepContext) -> dict[str, Any]:
    ctx.context["prepared"] = True
    ctx.context["count"] = ctx.params["count"]
    return {"count": ctx.params["count"]}


def check_context(ctx: StepContext) -> str:
    if not ctx.context.get("prepared"):
        raise AssertionError("chain context lost")
    if os.environ.get("BATON_TEST_TASKLET_FAIL"):
        raise RuntimeError("tasklet failure")
    ctx.context["checked"] = ctx.context.get("checked", 0) + 1
    return "ok"


def boom(ctx: StepContext) -> None:
    raise RuntimeError("boom: the tasklet raised")


@baton.job(
    "decorated-numbers",
    parameters=[baton.param("count", "int", identifying=True)],
    incrementer="run.id",
)
def decorated_numbers() -> list[Any]:
    return [
        baton.tasklet("prepare", prepare),
        baton.chunk("load", reader=NumbersReader, processor=process, writer=OutWriter, size=10),
    ]


keyed_table = Table(
    "keyed",
    MetaData(),
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("tag", String(20)),
)


class KeyedWriter(SqlWriter):
    """Into table `keyed` (primary key n): a repeated n violates the key."""

    table = keyed_table
    create = True


def repeat_seven(item: dict[str, Any]) -> dict[str, Any]:
    """Item 8 is written with n=7 again: a duplicate key, found by the database."""
    n = 7 if item["n"] == 8 else item["n"]
    return {"n": n, "tag": f"t{item['n']}"}
