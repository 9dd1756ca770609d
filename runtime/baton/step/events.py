"""Progress events from a unit process to the local executor that started it.

The executor gives each unit process the write end of a pipe (its descriptor in
``BATON_EVENTS_FD``); the unit writes one JSON line per event: ``open`` (its step
execution), ``total`` (the reader's item count), ``chunk`` (the counts of a committed
chunk) and ``partitions`` (it added work). The executor learns progress from these
and when units end from their exit status, so it reads the repository only when a unit
ends, not on a timer. The pipe is non-blocking and the events are advisory: a full
pipe drops one (the repository stays the record), and a step never waits on a display.
Pods have no such pipe: there every call here is a no-op. Stdlib only.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, MutableMapping
from typing import Any

EVENTS_FD_ENV = "BATON_EVENTS_FD"
_fd: int | None = None


def listen(env: MutableMapping[str, str]) -> None:
    """Send events to the pipe named in ``env`` (removed from it, so that a process the
    unit starts does not write into an unrelated descriptor of the same number)."""
    global _fd
    raw = env.pop(EVENTS_FD_ENV, "")
    if not raw.isdigit():
        return
    fd = int(raw)
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
        os.set_blocking(fd, False)
    except OSError:
        return
    _fd = fd


def emit(event: str, **fields: Any) -> None:
    """One event line (smaller than PIPE_BUF, so written whole or not at all)."""
    global _fd
    if _fd is None:
        return
    line = json.dumps({"event": event, **fields}, default=str, separators=(",", ":"))
    try:
        os.write(_fd, line.encode() + b"\n")
    except BlockingIOError:
        pass  # the executor is behind: this progress line is dropped, not waited for
    except OSError:
        _fd = None  # the executor is gone


def counts(values: Mapping[str, int]) -> None:
    """A committed chunk's counts (the fields of :class:`baton.core.counts.Counts`)."""
    emit("chunk", **values)
