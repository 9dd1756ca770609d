"""Components for the SQL writer mode tests: a writer that dies (SIGKILL) right after
its own transaction committed a chunk, before the checkpoint; a writer that fails
transiently once per chunk after writing; a processor that makes one bad row."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from baton import SqlWriter


class Transient(Exception):
    pass


class DiesAfterCommitWriter(SqlWriter):
    """With its own ``url``: commits a chunk, then the process is killed when the chunk
    holds n = $MODEJOBS_KILL_AT (once: a marker file next to the writer's database)."""

    def write(self, items: list[Any]) -> None:
        super().write(items)
        marker = Path(os.environ.get("MODEJOBS_MARKER", "/nonexistent/marker"))
        at = os.environ.get("MODEJOBS_KILL_AT")
        if at and any(str(i["n"]) == at for i in items) and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


_failed_chunks: set[int] = set()


class FlakyAfterWriteWriter(SqlWriter):
    """Writes the chunk into the checkpoint transaction, then fails once with
    ``Transient``: the retry must not leave the first attempt's rows behind."""

    def write(self, items: list[Any]) -> None:
        super().write(items)
        first = items[0]["n"]
        if len(items) > 1 and first not in _failed_chunks:
            _failed_chunks.add(first)
            raise Transient(f"transient after writing {first}..")


def null_tag_at(item: dict[str, Any]) -> dict[str, Any]:
    """Item $MODEJOBS_BAD gets a NULL tag (refused by NOT NULL), the rest a tag
    ($MODEJOBS_TAG, default ``t``, then n)."""
    n = item["n"]
    tag = f"{os.environ.get('MODEJOBS_TAG', 't')}{n}"
    return {"n": n, "tag": None if str(n) == os.environ.get("MODEJOBS_BAD") else tag}
