"""Waiting for units without polling: the local executor sleeps in one ``select`` on
its units' descriptors (exit, events, output) and a wake-up pipe, and wakes when a
unit ends, when a unit's event asks for a fresh look at the repository (it added
partitions), when a signal or an in-process unit writes the wake-up pipe, or at the
next deadline. Output and progress arrive on the way without waking the flow logic,
so the repository is read per unit, not per unit of time.
"""

from __future__ import annotations

import contextlib
import enum
import os
import selectors
import time
from collections.abc import Callable, Mapping
from typing import Any

from baton.executors.units import Running

FALLBACK_SECONDS = 0.2
"""How soon to look again at a unit process that has no pidfd (not Linux)."""

OnEvent = Callable[[Any, Running, dict[str, Any]], bool]
"""Handles one event of a unit; True when the executor should look at the repository."""


class Woken(enum.Enum):
    ENDED = "a unit ended"
    REFRESH = "a unit changed the flow"
    SIGNAL = "woken"
    TIMEOUT = "timeout"


class UnitWatch:
    """The executor's one place of waiting."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def wake(self) -> None:
        """Wake the waiting executor: safe from a signal handler and from any thread."""
        if self._write < 0:
            return  # closed: its number may be another file's by now
        with contextlib.suppress(OSError):  # full: a wake-up is pending already
            os.write(self._write, b"!")

    def descriptors(self) -> tuple[int, int]:
        return self._read, self._write

    def close(self) -> None:
        if self._write >= 0:
            write, self._write = self._write, -1
            os.close(write)
            os.close(self._read)

    def wait(
        self, running: Mapping[Any, Running], timeout: float | None, on_event: OnEvent
    ) -> Woken:
        """Until a unit ends, an event asks for a look, a wake-up or ``timeout`` (None:
        no limit) passes; which of them. Output and events are handled meanwhile."""
        if any(r.proc is not None and r.pidfd is None for r in running.values()):
            timeout = FALLBACK_SECONDS if timeout is None else min(timeout, FALLBACK_SECONDS)
        end = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self._read, selectors.EVENT_READ, None)
            for key, r in running.items():
                for fd in r.watched():
                    sel.register(fd, selectors.EVENT_READ, (key, r))
            while True:
                left = None if end is None else max(0.0, end - time.monotonic())
                ready = sel.select(left)
                if not ready:
                    return Woken.TIMEOUT
                woken = self._handle(sel, ready, on_event)
                if woken is not None:
                    return woken

    def _handle(
        self,
        sel: selectors.BaseSelector,
        ready: list[tuple[selectors.SelectorKey, int]],
        on_event: OnEvent,
    ) -> Woken | None:
        refresh = False
        for sk, _ in ready:
            if sk.data is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._read, 512):
                        pass
                return Woken.SIGNAL
            key, r = sk.data
            if sk.fd == r.pidfd:
                return Woken.ENDED
            if sk.fd == r.out_fd:
                r.copy_output()
                if r.out_fd is None:
                    sel.unregister(sk.fd)
            elif sk.fd == r.events_fd:
                for event in r.events():
                    refresh = on_event(key, r, event) or refresh
                if r.events_fd is None:
                    sel.unregister(sk.fd)
        return Woken.REFRESH if refresh else None
