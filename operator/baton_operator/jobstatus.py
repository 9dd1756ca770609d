"""A BatchJob's ``.status``: how many of its BatchExecutions are in each phase, and the
latest one. Aggregated from the phases the operator writes or reads, and written only
when they changed, at most once per ``interval`` per BatchJob: a burst of 1,000
executions of one BatchJob changing phase costs a few writes a second, not 1,000 (a
timer writes what a burst left behind)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton_operator.k8s.cluster import Cluster
from baton_operator.k8s.resources import JobStatus, Phase
from baton_operator.metrics import observe_phase
from baton_operator.patching import status_patch

log = logging.getLogger("baton.operator")

INTERVAL = 1.0
"""Seconds between two status writes of one BatchJob."""


@dataclass(frozen=True)
class Member:
    """One BatchExecution of a BatchJob, as the BatchJob's status counts it."""

    phase: str  # "" while it has none yet (Pending)
    created: str  # metadata.creationTimestamp (RFC 3339 sorts as text)


def job_status(members: Mapping[str, Member]) -> dict[str, Any]:
    """A BatchJob's ``.status`` from its BatchExecutions (name → phase, creation)."""
    phases: dict[str, int] = {}
    for m in members.values():
        key = m.phase or Phase.PENDING.value
        phases[key] = phases.get(key, 0) + 1
    last = max(members.items(), key=lambda kv: (kv[1].created, kv[0]), default=None)
    return JobStatus(
        executions=len(members),
        phases=dict(sorted(phases.items())),
        last_execution=last[0] if last else None,
        last_phase=(last[1].phase or Phase.PENDING.value) if last else None,
    ).dump()


class JobStatuses:
    """The executions of each (namespace, BatchJob) as last seen, and the BatchJob
    statuses still to write."""

    def __init__(self, cluster: Cluster, interval: float = INTERVAL) -> None:
        self.cluster = cluster
        self.interval = interval
        self._guard = threading.Lock()
        self._members: dict[tuple[str, str], dict[str, Member]] = {}
        self._listed: set[str] = set()  # namespaces whose executions were listed once
        self._dirty: set[tuple[str, str]] = set()
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._taken: dict[tuple[str, str], float] = {}  # when each was last taken to write
        self._busy: set[tuple[str, str]] = set()  # being written by some thread
        self._timer: threading.Timer | None = None

    def note(self, obj: dict[str, Any], phase: str | None) -> None:
        """Remember an execution's phase for its BatchJob's status and the metrics (the
        first time in a namespace, list all its executions, so counts are whole after a
        restart). Every phase the operator writes or reads passes here, once."""
        meta = obj["metadata"]
        namespace = meta["namespace"]
        job = str(obj["spec"]["job"])
        observe_phase(namespace, meta["name"], job, phase or Phase.PENDING.value)
        if namespace not in self._listed:
            self._listed.add(namespace)
            for other in self.cluster.list_executions(namespace):
                if other["metadata"]["name"] != meta["name"]:
                    self.note(other, (other.get("status") or {}).get("phase"))
        key = (namespace, job)
        member = Member(phase or "", str(meta.get("creationTimestamp") or ""))
        with self._guard:
            members = self._members.setdefault(key, {})
            if members.get(meta["name"]) != member:
                members[meta["name"]] = member
                self._dirty.add(key)

    def forget(self, namespace: str, name: str) -> None:
        """An execution is gone: its BatchJob counts one less."""
        with self._guard:
            for key, members in self._members.items():
                if key[0] == namespace and members.pop(name, None) is not None:
                    self._dirty.add(key)

    def flush(self) -> None:
        """Write the ``.status`` of each BatchJob whose executions changed phase, unless
        it was written less than ``interval`` ago (then the timer writes it) or another
        thread is writing it (then that one's next flush does: no older snapshot can
        land after a newer one)."""
        wanted = self._take()
        try:
            for (namespace, job), new in wanted.items():
                if self._written.get((namespace, job)) == new:
                    continue
                obj = self.cluster.get_batch_job(namespace, job)
                if obj is None:
                    continue
                patch = status_patch(obj.get("status"), new)
                if patch:
                    self.cluster.patch_job_status(namespace, job, patch)
                self._written[(namespace, job)] = new
        except Exception:
            with self._guard:  # written again by a later flush
                self._dirty |= set(wanted)
            raise
        finally:
            with self._guard:
                self._busy -= set(wanted)
            self._defer()

    def _take(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The statuses due now, marked busy."""
        now = time.monotonic()
        with self._guard:
            due = {
                key
                for key in self._dirty - self._busy
                if now - self._taken.get(key, float("-inf")) >= self.interval
            }
            self._dirty -= due
            self._busy |= due
            for key in due:
                self._taken[key] = now
            return {key: job_status(self._members.get(key, {})) for key in due}

    def _defer(self) -> None:
        """Start the timer for what is still dirty (one timer at a time)."""
        with self._guard:
            if not self._dirty or self._timer is not None:
                return
            self._timer = threading.Timer(self.interval, self._deferred)
            self._timer.daemon = True
            self._timer.start()

    def _deferred(self) -> None:
        with self._guard:
            self._timer = None
        try:
            self.flush()  # which starts the next timer for whatever is still dirty
        except Exception:  # the API server is away: retried by the next flush
            log.exception("writing BatchJob statuses failed")
