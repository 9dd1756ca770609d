"""Discover files at run time and fan out one partition per file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baton import StepContext


def _inbox(ctx: StepContext) -> Path:
    given = ctx.params["inbox"]
    return Path(given) if given else Path(__file__).with_name("inbox")


def scan(ctx: StepContext) -> int:
    files = sorted(str(p) for p in _inbox(ctx).glob("*.txt"))
    ctx.add_partitions("ingest", [{"path": f} for f in files])
    return len(files)


def ingest(ctx: StepContext) -> dict[str, Any]:
    path = Path(ctx.partition["path"])
    lines = path.read_text().splitlines()
    return {"file": path.name, "lines": len(lines)}


def summarize(ctx: StepContext) -> dict[str, Any]:
    files = ctx.results("ingest")
    return {"files": len(files), "lines": sum(f["lines"] for f in files)}
