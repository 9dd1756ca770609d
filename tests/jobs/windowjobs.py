"""Components of the schedule tests: a window's work, failing once where asked, slow
where asked (so a window can be seen running, stopped or replaced)."""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any


class WindowReader:
    """``items`` items, ``WINDOW_SLEEP`` seconds each; the window listed in
    ``WINDOW_FAIL_ONCE`` fails at its third item the first time (a marker file in
    ``WINDOW_DIR`` remembers it), so its restart resumes from the checkpoint."""

    def __init__(self, params: Any):
        day = params["day"]
        self.day = day.isoformat() if hasattr(day, "isoformat") else str(day)
        self.count = int(params["items"])
        self.pos = 0

    def open(self, context: MutableMapping[str, Any]) -> None:
        self.pos = int(context.get("pos", 0))

    def read(self) -> Any:
        time.sleep(float(os.environ.get("WINDOW_SLEEP", "0")))
        if self.pos == 2 and self._fail_now():
            raise RuntimeError(f"window {self.day} failed (once)")
        if self.pos >= self.count:
            return None
        self.pos += 1
        return {"day": self.day, "n": self.pos}

    def _fail_now(self) -> bool:
        marker = Path(os.environ.get("WINDOW_DIR", ".")) / f"failed-{self.day.replace(':', '')}"
        if os.environ.get("WINDOW_FAIL_ONCE") != self.day or marker.exists():
            return False
        marker.touch()
        return True

    def update(self, context: MutableMapping[str, Any]) -> None:
        context["pos"] = self.pos

    def close(self) -> None:
        pass


class NullWriter:
    def write(self, items: list[Any]) -> None:
        pass
