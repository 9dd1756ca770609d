"""While executions run, reconcile them every few seconds (the repository's progress
mirrored into ``.status``, stale units noticed) — without a finalizer.

Kopf's ``@kopf.timer`` puts a finalizer on every object it times, so a BatchExecution
that was running when the operator went away (uninstalled, scaled to zero) could never
be deleted, and its namespace stayed Terminating. Nothing needs cleaning up when a
BatchExecution is deleted (its Jobs and pods go by ownerReferences; the repository is
told on the DELETED watch event), so the operator keeps its own list of running
executions, fed by the watch events, and ticks them on one thread.

Only the active replica ticks: Kopf peering pauses the others' handlers, and the
:class:`PeeringGate` reads the same peering object to pause this thread too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("baton.operator")

Key = tuple[str, str]
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Ticker:
    """The running executions (namespace, name), reconciled every ``interval`` seconds
    while ``active()`` says this replica is the one working."""

    def __init__(
        self,
        reconcile: Callable[[str, str], str | None],
        *,
        terminal: Iterable[str],
        active: Callable[[], bool] = lambda: True,
        interval: float = 2.0,
        workers: int = 4,
        chores: tuple[Callable[[], object], ...] = (),
        dispatch: Callable[[list[Key]], None] | None = None,
    ) -> None:
        """``chores``: also run every round while active (e.g. deleting finished
        executions whose TTL is up), each failure logged, never fatal. ``dispatch``:
        hand each round's keys to it (a work queue) instead of reconciling them here."""
        self._reconcile = reconcile
        self._dispatch = dispatch
        self._chores = chores
        self._terminal = frozenset(terminal)
        self._active = active
        self.interval = interval
        self._workers = max(1, workers)
        self._running: set[Key] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, namespace: str, name: str, phase: str | None) -> None:
        """Note an execution's phase: ticked while not terminal."""
        with self._guard:
            if phase in self._terminal:
                self._running.discard((namespace, name))
            else:
                self._running.add((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._running.discard((namespace, name))

    def running(self) -> list[Key]:
        with self._guard:
            return sorted(self._running)

    def tick(self) -> int:
        """Reconcile every running execution once; returns how many were reconciled."""
        keys = self.running()
        if not keys or not self._active():
            return 0
        if self._dispatch is not None:
            self._dispatch(keys)
            return len(keys)
        with ThreadPoolExecutor(min(self._workers, len(keys))) as pool:
            list(pool.map(self._one, keys))
        return len(keys)

    def _one(self, key: Key) -> None:
        try:
            phase = self._reconcile(*key)
        except Exception:  # one execution's trouble never stops the others' ticks
            log.exception("reconcile of %s/%s failed; retried at the next tick", *key)
            return
        if phase is None:
            self.forget(*key)  # gone (deleted)
        else:
            self.track(*key, phase)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="baton-ticker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def chores(self) -> None:
        """Run the chores once, if this replica is the active one."""
        if not self._chores or not self._active():
            return
        for chore in self._chores:
            try:
                chore()
            except Exception:
                log.exception("ticker chore %s failed", getattr(chore, "__name__", chore))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # pragma: no cover - tick() already contains its errors
                log.exception("ticker round failed")
            self.chores()


def peering_active(status: Mapping[str, Any] | None, priority: int, now: float) -> bool:
    """Is the operator with ``priority`` the one Kopf lets work, given the peering
    object's ``status`` (identity → {priority, lifetime, lastseen})? Kopf pauses an
    operator when a live peer has a higher priority, and all of them when several share
    the highest one; priorities are drawn at random, so ours is ours alone."""
    same = 0
    for info in (status or {}).values():
        if not isinstance(info, Mapping):
            continue
        if _expired(info, now):
            continue
        theirs = int(info.get("priority", 0))
        if theirs > priority:
            return False
        same += theirs == priority
    return same <= 1


def _expired(info: Mapping[str, Any], now: float) -> bool:
    seen = info.get("lastseen")
    if not seen:
        return False
    try:
        when = datetime.fromisoformat(str(seen).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return when + float(info.get("lifetime", 60)) <= now


class PeeringGate:
    """``active()`` for the ticker: reads the Kopf peering object (cached for
    ``ttl`` seconds); always active when the operator runs standalone."""

    def __init__(
        self,
        read: Callable[[], Mapping[str, Any] | None] | None,
        priority: int,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._priority = priority
        self._ttl = ttl
        self._clock = clock
        self._checked = float("-inf")
        self._active = False

    def __call__(self) -> bool:
        if self._read is None:
            return True
        now = self._clock()
        if now - self._checked < self._ttl:
            return self._active
        self._checked = now
        try:
            body = self._read()
        except Exception as e:
            log.warning("cannot read the peering object (%s); not ticking", e)
            self._active = False
            return False
        was = self._active
        self._active = peering_active((body or {}).get("status"), self._priority, now)
        if was != self._active:
            log.info("ticker %s", "active" if self._active else "paused (another peer works)")
        return self._active


def own_namespace(default: str = "default") -> str:
    try:
        return SA_NAMESPACE.read_text().strip() or default
    except OSError:
        return default
