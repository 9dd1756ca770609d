"""Map-reduce word count over corpus.txt."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from baton import StepContext

CORPUS = Path(__file__).with_name("corpus.txt")


def split(ctx: StepContext) -> list[dict[str, int]]:
    """One partition per slice of lines: its result is the partition list of `count`."""
    lines = CORPUS.read_text().splitlines()
    parts = max(1, ctx.params["parts"])
    size = -(-len(lines) // parts)
    ctx.context["lines"] = len(lines)
    return [{"start": i, "end": min(i + size, len(lines))} for i in range(0, len(lines), size)]


def count(ctx: StepContext) -> dict[str, int]:
    """The map: word counts of this partition's slice (ctx.partition holds its args)."""
    lines = CORPUS.read_text().splitlines()[ctx.partition["start"] : ctx.partition["end"]]
    words = re.findall(r"[a-z']+", " ".join(lines).lower())
    return dict(Counter(words))


def reduce(ctx: StepContext) -> dict[str, Any]:
    """The reduce: merge every partition's counts, in partition order."""
    total: Counter[str] = Counter()
    for partial in ctx.results("count"):
        total.update(partial)
    top = total.most_common(ctx.params["top"])
    ctx.context["top"] = top
    return {"words": sum(total.values()), "distinct": len(total), "top": top}
