"""The step code of the scale bench's jobs, run by the step simulator (never in a pod).

A chunk step of ``chunks`` chunks of one item spread over ``seconds``: each chunk
sleeps its share, then commits one checkpoint through the real chunk loop, so a unit
writes checkpoints at the rate a real step of that length would.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any


class TimedReader:
    """Reads items 1..chunks, one every ``seconds / chunks``; restartable (cursor)."""

    def __init__(self, params: Any):
        self.count = int(params["chunks"])
        self.pause = float(params["seconds"]) / max(1, self.count)
        self.pos = 0

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("timed.pos", 0))

    def read(self) -> Any:
        if self.pos >= self.count:
            return None
        time.sleep(self.pause)
        self.pos += 1
        return self.pos

    def update(self, context: MutableMapping[str, Any]) -> None:
        context["timed.pos"] = self.pos

    def close(self) -> None:
        pass

    def total(self) -> int:
        return self.count - self.pos


class NullWriter:
    """Writes nothing: the checkpoint is the database work being measured."""

    def write(self, items: list[Any]) -> None:
        pass
