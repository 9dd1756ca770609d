"""Components of the flow tests (fan-out, groups, sagas, callbacks, budgets)."""

from __future__ import annotations

import os
import time
from typing import Any

from baton import StepContext


def stamp(ctx: StepContext) -> dict[str, Any]:
    """Record when this unit ran (to check overlap and parallelism) and what it saw."""
    start = time.time()
    time.sleep(float(os.environ.get("FLOW_SLEEP", "0.3")))
    if os.environ.get("FLOW_FAIL") == f"{ctx.step_name}:{ctx.partition_index}":
        raise RuntimeError(f"injected failure in {ctx.step_name}[{ctx.partition_index}]")
    return {
        "step": ctx.step_name,
        "partition": ctx.partition,
        "index": ctx.partition_index,
        "start": start,
        "end": time.time(),
        "seen": dict(ctx.context),
    }


def seed(ctx: StepContext) -> list[dict[str, int]]:
    ctx.context["seeded"] = "yes"
    return [{"n": n} for n in (10, 20, 30)]


def square(ctx: StepContext) -> int:
    return int(ctx.partition["n"]) ** 2


def total(ctx: StepContext) -> int:
    ctx.context["total"] = sum(ctx.results("square"))
    return int(ctx.context["total"])


def write_shared(ctx: StepContext) -> None:
    ctx.context["nope"] = 1  # shared context is read-only inside partitions


def member_a(ctx: StepContext) -> str:
    ctx.context["a"] = "from a"
    stamp(ctx)
    return "a"


def member_b(ctx: StepContext) -> str:
    ctx.context["b"] = "from b"
    stamp(ctx)
    return "b"


def after_group(ctx: StepContext) -> dict[str, Any]:
    return {"a": ctx.context.get("a"), "b": ctx.context.get("b")}


def undo(ctx: StepContext) -> dict[str, Any]:
    assert ctx.compensation is not None
    return dict(ctx.compensation)


def fail(ctx: StepContext) -> None:
    raise RuntimeError("this step always fails")


def callback(ctx: StepContext) -> dict[str, Any]:
    assert ctx.execution is not None
    return dict(ctx.execution)


def discover(ctx: StepContext) -> int:
    ctx.add_partitions("work", [{"n": 1}, {"n": 2}])
    ctx.add_partitions("work", [{"n": 3}])
    return 3


class SlowNumbers:
    """Reads 1..count with a delay per item (for time budgets)."""

    def __init__(self, params: Any):
        self.count = int(params["count"])
        self.pos = 0

    def open(self, context: dict[str, Any]) -> None:
        self.pos = int(context.get("pos", 0))

    def read(self) -> Any:
        if self.pos >= self.count:
            return None
        time.sleep(float(os.environ.get("FLOW_ITEM_SLEEP", "0.02")))
        self.pos += 1
        return {"n": self.pos, "tag": "budget"}

    def update(self, context: dict[str, Any]) -> None:
        context["pos"] = self.pos

    def close(self) -> None:
        pass
