"""Who reconciles what, when: Kopf's handlers and the ticker only add BatchExecutions
to the :class:`~baton_operator.workqueue.WorkQueue`; the workers reconcile them.

Each tick reads the repository once for all running executions (the controller's
:class:`~baton_operator.prefetch.Prefetch`), then queues every running execution that
is not waiting out a backoff; the workers' reconciles use that read. An execution whose
reconcile failed is retried after its own exponential backoff, not at every tick."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from baton_operator.k8s.informer import CachedCluster
from baton_operator.loop import Controller
from baton_operator.metrics import QUEUE_DEPTH, QUEUE_RETRIES, QUEUE_WAIT
from baton_operator.ticker import Key, Ticker
from baton_operator.workqueue import Workers, WorkQueue

log = logging.getLogger("baton.operator")


class Dispatcher:
    """The work queue of BatchExecutions, its workers and the tick that feeds it."""

    def __init__(
        self,
        controller: Controller,
        *,
        terminal: frozenset[str],
        active: Callable[[], bool] = lambda: True,
        interval: float = 2.0,
        workers: int = 4,
        backoff: tuple[float, float] = (1.0, 300.0),
        chores: tuple[Callable[[], object], ...] = (),
        cache: CachedCluster | None = None,
        resync_seconds: float = 300.0,
    ) -> None:
        """``cache``: compared with a LIST of the running executions' namespaces every
        ``resync_seconds`` (what a watch gap deleted unseen is then treated as deleted)."""
        self.controller = controller
        self.cache = cache
        self.resync_seconds = resync_seconds
        self._synced = time.monotonic()
        self.queue: WorkQueue[Key] = WorkQueue(
            base=backoff[0], cap=backoff[1], observe_wait=QUEUE_WAIT.observe
        )
        self.ticker = Ticker(
            controller.reconcile,
            terminal=terminal,
            active=active,
            interval=interval,
            chores=(*chores, self.resync),
            dispatch=self.tick,
        )
        self.workers = Workers(
            self.queue, self.work, count=workers, active=active, on_retry=QUEUE_RETRIES.inc
        )

    def enqueue(self, namespace: str, name: str) -> None:
        """An event about the execution: reconcile it soon (once, however many events)."""
        self.queue.add((namespace, name))
        QUEUE_DEPTH.set(len(self.queue))

    def tick(self, keys: list[Key]) -> None:
        """One round: one repository read for all, then each queued for a worker."""
        due = [key for key in keys if not self.queue.backing_off(key)]
        try:
            self.controller.prefetch.read(due)
        except Exception:  # the database is down: each reconcile says so, and backs off
            log.exception("reading the running executions' state failed")
        for key in due:
            self.queue.add(key)
        QUEUE_DEPTH.set(len(self.queue))

    def work(self, key: Key) -> None:
        """A worker's reconcile of one execution; ticked while it runs."""
        QUEUE_DEPTH.set(len(self.queue))
        phase = self.controller.reconcile(*key)
        if phase is None:
            self.ticker.forget(*key)
        else:
            self.ticker.track(*key, phase)

    def resync(self, force: bool = False) -> int:
        """Every ``resync_seconds``: executions deleted while a watch was away (no
        DELETED event came) are treated as deleted now; how many."""
        now = time.monotonic()
        if self.cache is None or (not force and now - self._synced < self.resync_seconds):
            return 0
        self._synced = now
        found = 0
        for namespace in sorted({ns for ns, _ in self.ticker.running()}):
            for body in self.cache.gone(namespace):
                meta, spec = body["metadata"], body.get("spec") or {}
                self.ticker.forget(namespace, meta["name"])
                status = dict(body.get("status") or {})
                uid = meta.get("uid")
                self.controller.deleted(
                    namespace, meta["name"], status, job=spec.get("job"), uid=uid
                )
                found += 1
        return found

    def drain(self) -> int:
        """Work through what is queued now, on this thread (tests; no workers needed)."""
        done = 0
        while (key := self.queue.get(timeout=0)) is not None:
            self.workers.run(key)
            done += 1
        return done

    def start(self) -> None:
        self.workers.start()
        self.ticker.start()

    def stop(self) -> None:
        self.ticker.stop()
        self.workers.stop()
