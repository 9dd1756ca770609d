"""The operator's work queue (client-go's workqueue, in small): keys of BatchExecutions
to reconcile, first in first out, each at most once in the queue and never in two
workers at once; a key that failed comes back after a per-key exponential backoff.

Kopf's handlers and the ticker only add keys; a fixed number of worker threads
(:class:`Workers`, chart ``operator.workers``) take them. A burst of a thousand applies
is therefore a thousand keys worked through in order at the workers' pace, and a
database or API server that fails makes each key wait ``base * 2**failures`` seconds
(at most ``cap``) instead of being retried at every tick."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("baton.operator")

K = TypeVar("K", bound=Hashable)


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after the n-th failure in a row: base, 2·base, 4·base... ≤ cap."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 62)))


class WorkQueue(Generic[K]):
    """FIFO of unique keys, with keys in work kept apart and delayed re-adds."""

    def __init__(
        self,
        *,
        base: float = 1.0,
        cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        observe_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.base, self.cap = base, cap
        self._clock = clock
        self._observe_wait = observe_wait
        self._queue: OrderedDict[K, float] = OrderedDict()  # key → when added
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # added again while in work: re-queued when done
        self._delayed: list[tuple[float, int, K]] = []  # (due, seq, key)
        self._due: dict[K, int] = {}  # key → seq of its live delayed entry
        self._failures: dict[K, int] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False

    def add(self, key: K) -> None:
        """Queue the key now (a no-op if it is queued; once more after its work if it is
        being worked on)."""
        with self._cond:
            self._add(key)

    def _add(self, key: K) -> None:
        if self._closed or key in self._queue:
            return
        self._due.pop(key, None)  # a pending delayed add is now moot
        if key in self._processing:
            self._dirty.add(key)
            return
        self._queue[key] = self._clock()
        self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        with self._cond:
            if delay <= 0:
                self._add(key)
                return
            seq = next(self._seq)
            self._due[key] = seq
            heapq.heappush(self._delayed, (self._clock() + delay, seq, key))
            self._cond.notify()

    def backing_off(self, key: K) -> bool:
        """Whether the key failed and waits for its retry (the ticker leaves it alone)."""
        with self._cond:
            return key in self._due and self._failures.get(key, 0) > 0

    def retry(self, key: K) -> float:
        """The key's work failed: add it again after its backoff; the delay chosen."""
        with self._cond:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = backoff_delay(failures, self.base, self.cap)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key's work succeeded: its backoff starts again from ``base``."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> K | None:
        """The oldest key, now in work (call :meth:`done`); None on timeout or close."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._promote()
                if self._queue:
                    key, added = self._queue.popitem(last=False)
                    self._processing.add(key)
                    self._observe_wait(self._clock() - added)
                    return key
                if self._closed:
                    return None
                wait = self._next_wait(deadline)
                if wait is not None and wait <= 0:
                    return None
                self._cond.wait(wait)

    def _promote(self) -> None:
        """Move the delayed keys that are due into the queue."""
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, key = heapq.heappop(self._delayed)
            if self._due.get(key) == seq:
                del self._due[key]
                self._add(key)

    def _next_wait(self, deadline: float | None) -> float | None:
        now = self._clock()
        waits = []
        if self._delayed:
            waits.append(max(0.001, self._delayed[0][0] - now))
        if deadline is not None:
            waits.append(deadline - now)
        return min(waits) if waits else None

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key)

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Workers(Generic[K]):
    """``count`` threads taking keys from a :class:`WorkQueue` and calling ``work(key)``
    while ``active()`` (Kopf peering: only the active replica works); an exception
    re-queues the key with its backoff, a success resets it."""

    def __init__(
        self,
        queue: WorkQueue[K],
        work: Callable[[K], object],
        *,
        count: int = 4,
        active: Callable[[], bool] = lambda: True,
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self._work = work
        self._count = max(1, count)
        self._active = active
        self._on_retry = on_retry
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._count):
            t = threading.Thread(target=self._loop, name=f"baton-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._active():
                self._stop.wait(1.0)  # paused: keys stay queued for when we are active
                continue
            key = self.queue.get(timeout=1.0)
            if key is not None:
                self.run(key)

    def run(self, key: K) -> None:
        """Work on one key taken from the queue (a worker's step; tests call it)."""
        try:
            self._work(key)
        except Exception:
            delay = self.queue.retry(key)
            self._on_retry()
            log.exception("reconcile of %s failed; retried in %.1fs", key, delay)
        else:
            self.queue.forget(key)
        finally:
            self.queue.done(key)
