"""A BatchJob's ``.status``: how many of its BatchExecutions are in each phase, and the
latest one. Aggregated from the phases the operator writes or reads, and written only
when they changed (one patch per phase change, not per reconcile)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton_operator.k8s.cluster import Cluster
from baton_operator.k8s.resources import JobStatus, Phase
from baton_operator.metrics import observe_phase
from baton_operator.patching import status_patch


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

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._guard = threading.Lock()
        self._members: dict[tuple[str, str], dict[str, Member]] = {}
        self._listed: set[str] = set()  # namespaces whose executions were listed once
        self._dirty: set[tuple[str, str]] = set()
        self._written: dict[tuple[str, str], dict[str, Any]] = {}

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
        """Write the ``.status`` of each BatchJob whose executions changed phase."""
        with self._guard:
            dirty, self._dirty = self._dirty, set()
            wanted = {key: job_status(self._members.get(key, {})) for key in dirty}
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
