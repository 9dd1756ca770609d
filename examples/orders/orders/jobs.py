"""Tasklets of the import-orders job."""

from __future__ import annotations

import csv
import datetime as dt
import random
import tempfile
from pathlib import Path
from typing import Any

from baton import StepContext

HEADER = ["id", "customer", "amount", "currency", "status"]
BAD_EVERY = 20_011  # a few rows per file carry an unparseable amount (skipped)


def input_path(path: str, day: dt.date) -> Path:
    """``path`` (the ``input`` parameter), or the day's generated file when it is empty."""
    if path:
        return Path(path)
    return Path(tempfile.gettempdir()) / "baton-orders" / f"orders-{day}.csv"


def generate(path: Path, day: dt.date, rows: int) -> None:
    """Write a deterministic orders file for ``day`` (stands in for a real feed)."""
    rng = random.Random(day.toordinal())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(1, rows + 1):
            amount = "n/a" if i % BAD_EVERY == 0 else f"{rng.uniform(1, 500):.2f}"
            status = "cancelled" if rng.random() < 0.02 else "paid"
            w.writerow(
                [
                    i,
                    f"c{rng.randrange(1, 5000):05d}",
                    amount,
                    rng.choice(["EUR", "USD", "GBP"]),
                    status,
                ]
            )
    tmp.replace(path)


def ensure_input(path: str, day: dt.date, rows: int) -> Path:
    """The day's file, generated (deterministically) where it does not exist yet."""
    source = input_path(path, day)
    if not source.exists():
        generate(source, day, rows)
    return source


def validate(ctx: StepContext) -> dict[str, Any]:
    """Make sure the day's file is there and well-formed; share its path with later steps."""
    path = ensure_input(ctx.params["input"], ctx.params["date"], ctx.params["rows"])
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    if header != HEADER:
        raise ValueError(f"{path}: unexpected header {header}, expected {HEADER}")
    ctx.context["input"] = str(path)
    return {"file": str(path)}
