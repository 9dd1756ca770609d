"""Components of the window-report job (the schedule example)."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from baton import SqlWriter, StepContext
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table
from sqlalchemy.schema import CreateTable

window_rows = Table(
    "window_rows",
    MetaData(),
    Column("window", String(40), nullable=False),
    Column("n", Integer, nullable=False),
)


class WindowItems:
    """Items 1..items of the window; the cursor is saved at every checkpoint. The first
    attempt fails at item ``failFirstAttemptAt`` (0: never)."""

    def __init__(self, params: Any, step: StepContext, engine: Engine):
        create_table(engine)
        self.window = params["window"].isoformat()
        self.count = int(params["items"])
        self.delay = int(params["delayMs"]) / 1000
        self.fail_at = int(params["failFirstAttemptAt"]) if step.attempt == 1 else 0
        self.pos = 0

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("pos", 0))

    def read(self) -> Any:
        if self.pos >= self.count:
            return None
        if self.delay:
            time.sleep(self.delay)
        self.pos += 1
        if self.pos == self.fail_at:
            raise RuntimeError(f"window {self.window}: failing at item {self.pos} (first attempt)")
        return {"window": self.window, "n": self.pos}

    def update(self, context: MutableMapping[str, Any]) -> None:
        context["pos"] = self.pos

    def close(self) -> None:
        pass

    def total(self) -> int:
        return self.count - self.pos


class WindowRowsWriter(SqlWriter):
    """Into `window_rows`, which has no key: a duplicate would show, not fail."""

    table = window_rows


def create_table(engine: Engine) -> None:
    """Windows running side by side may both find the table missing: one statement
    (no check-then-create race, no read lock to upgrade on SQLite) creates it."""
    with engine.begin() as conn:
        conn.execute(CreateTable(window_rows, if_not_exists=True))
