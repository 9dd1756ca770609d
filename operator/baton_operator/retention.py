"""Retention in the operator: finished BatchExecutions deleted when their TTL is up,
ended step Jobs given their outcome's TTL (decisions in
:mod:`baton_operator.reconcile.retention`).

The due deletions are kept in memory, fed by every reconcile of a finished execution
(each watch event, and Kopf's listing when the operator starts: a restarted operator
finds the same deadlines, computed from the status). The ticker's thread sweeps them,
only on the active replica. A deletion is conditional on the object being the one the
decision read (uid and resourceVersion), so a restart asked for in between wins.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from baton.spec.retention import TtlStrategy

from baton_operator.config import OperatorConfig
from baton_operator.k8s.cleanup import Cleanup
from baton_operator.reconcile.retention import Expiry, expiry, step_job_ttl

log = logging.getLogger("baton.operator")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Retention:
    """The finished executions to delete, by (namespace, name), and the Job TTLs."""

    def __init__(
        self,
        api: Cleanup,
        config: OperatorConfig,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.api = api
        self.config = config
        self._clock = clock
        self._due: dict[tuple[str, str], Expiry] = {}
        self._guard = threading.Lock()

    def note(self, obj: Mapping[str, Any], strategy: TtlStrategy | None) -> None:
        """An execution as just read, with its job's ttlStrategy: schedule its deletion
        if it is finished and has a TTL, else drop any it had."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        found = expiry(obj, strategy)
        with self._guard:
            if found is None:
                self._due.pop(key, None)
            else:
                self._due[key] = found

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._due.pop((namespace, name), None)

    def pending(self) -> list[Expiry]:
        with self._guard:
            return sorted(self._due.values(), key=lambda e: e.due)

    def sweep(self) -> int:
        """Delete the executions whose time is up; how many were deleted. One that
        changed since it was read stays (its next event decides again)."""
        now = self._clock()
        with self._guard:
            due = [e for e in self._due.values() if e.due <= now]
            for e in due:
                del self._due[(e.namespace, e.name)]
        deleted = 0
        for e in due:
            try:
                gone = self.api.delete_execution(e.namespace, e.name, e.uid, e.resource_version)
            except Exception:  # one failure never stops the others; retried on its next event
                log.exception("could not delete finished %s/%s", e.namespace, e.name)
                continue
            if gone:
                deleted += 1
                log.info("%s/%s: finished, TTL up: deleted", e.namespace, e.name)
        return deleted

    def job_ended(self, job: Mapping[str, Any]) -> None:
        """A step Job that ended gets its outcome's ttlSecondsAfterFinished."""
        change = step_job_ttl(job, self.config)
        if change is not None:
            meta = job["metadata"]
            self.api.set_job_ttl(meta["namespace"], meta["name"], change.seconds)
