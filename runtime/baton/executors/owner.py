"""Who runs an execution: ``host:pid:start`` of a process, and whether it still lives.

The repository stores the owner string; only a process on the same host can tell
whether that owner is gone (the start time guards against a reused pid).
"""

from __future__ import annotations

import os
import socket


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_owner() -> str:
    """``host:pid:start`` of this process: enough to tell later whether it is gone."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}"


def owner_alive(owner: str | None) -> bool | None:
    """True/False when the owner ran on this host; None when it cannot be told here."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    current = _start_ticks(int(pid_text))
    return current is not None and (ticks in ("", "0") or current == ticks)
