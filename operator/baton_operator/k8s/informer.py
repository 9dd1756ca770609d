"""What the watches already delivered, kept in memory (client-go's informer caches, in
small): the latest body of every BatchExecution the operator owns and the step Jobs of
each execution. :class:`CachedCluster` serves the operator's reads from them, so a
reconcile costs no GET of its execution and no LIST of its Jobs; it reads the API
server only on a miss, or after a guarded write lost to another writer (HTTP 409).

Fed by the Kopf handlers (every BatchExecution event; every Job event through a Kopf
index, whose initial listing Kopf completes before any handler runs, so no reconcile
sees a half-filled Job cache) and by the responses of the operator's own writes.

Resource versions are opaque to clients, but on every API server they are etcd
revisions: an update older than what is held (a watch event arriving after the
response of a later write of ours) is ignored when both are numbers."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from baton_operator.k8s.cluster import Cluster, ObservedJob, observed_job
from baton_operator.k8s.labels import LABEL_EXECUTION

Key = tuple[str, str]


def newer(found: str | None, held: str | None) -> bool:
    """Whether resourceVersion ``found`` may replace ``held`` (unknown: yes)."""
    if not found or not held or not (found.isdigit() and held.isdigit()):
        return True
    return int(found) >= int(held)


def _version(body: Mapping[str, Any]) -> str | None:
    version = (body.get("metadata") or {}).get("resourceVersion")
    return str(version) if version is not None else None


class ExecutionStore:
    """The latest body of each BatchExecution, by (namespace, name). Bodies handed out
    are shared: callers never change them (every update replaces a whole body)."""

    def __init__(self) -> None:
        self._bodies: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def observe(self, body: Mapping[str, Any]) -> bool:
        """Keep a body (a watch event's, or a write's response); whether it is news
        (not the version held already, nor an older one)."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        version = _version(body)
        with self._lock:
            held = self._bodies.get(key)
            old = _version(held) if held is not None else None
            if held is not None and (version == old or not newer(version, old)):
                return False
            self._bodies[key] = copy.deepcopy(dict(body))
            return True

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._bodies.get((namespace, name))

    def discard(self, namespace: str, name: str) -> None:
        with self._lock:
            self._bodies.pop((namespace, name), None)

    def held(self, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b for (ns, _), b in self._bodies.items() if ns == namespace]

    def __len__(self) -> int:
        with self._lock:
            return len(self._bodies)


class JobCache:
    """The step Jobs of each execution, as :class:`ObservedJob`, with a generation per
    execution that moves on every change (a state read before a change is stale)."""

    def __init__(self) -> None:
        self._jobs: dict[Key, dict[str, tuple[str | None, ObservedJob]]] = {}
        self._generation: dict[Key, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key_of(body: Mapping[str, Any]) -> Key | None:
        meta = body.get("metadata") or {}
        execution = (meta.get("labels") or {}).get(LABEL_EXECUTION)
        return (meta["namespace"], execution) if execution else None

    def observe(self, body: Mapping[str, Any]) -> None:
        """A Job as a watch event (or our create) shows it."""
        key = self.key_of(body)
        if key is None:
            return
        job = observed_job(body)
        version = _version(body)
        with self._lock:
            jobs = self._jobs.setdefault(key, {})
            held = jobs.get(job.name)
            if held is not None and (not newer(version, held[0]) or held[1] == job):
                return
            jobs[job.name] = (version, job)
            self._generation[key] = self._generation.get(key, 0) + 1

    def discard(self, body: Mapping[str, Any]) -> None:
        """A Job is gone (its DELETED event)."""
        key = self.key_of(body)
        if key is None:
            return
        with self._lock:
            jobs = self._jobs.get(key, {})
            if jobs.pop(body["metadata"]["name"], None) is not None:
                self._generation[key] = self._generation.get(key, 0) + 1
            if not jobs:
                self._jobs.pop(key, None)

    def jobs(self, namespace: str, execution: str) -> list[ObservedJob]:
        with self._lock:
            return [job for _, job in (self._jobs.get((namespace, execution)) or {}).values()]

    def generation(self, namespace: str, execution: str) -> int:
        with self._lock:
            return self._generation.get((namespace, execution), 0)


class CachedCluster:
    """:class:`Cluster` whose execution and Job reads come from the watch-fed caches;
    everything else is the wrapped adapter's."""

    def __init__(self, inner: Cluster) -> None:
        self.inner = inner
        self.executions = ExecutionStore()
        self.jobs = JobCache()

    # ---- passed through: reads that are rare (a launch, a phase change) and writes

    def get_batch_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.inner.get_batch_job(namespace, name)

    def list_executions(self, namespace: str) -> list[dict[str, Any]]:
        return self.inner.list_executions(namespace)

    def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.inner.get_config_map_data(namespace, name)

    def get_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.inner.get_secret_data(namespace, name)

    def patch_job_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.inner.patch_job_status(namespace, name, patch)

    def delete_step_jobs(self, namespace: str) -> int:
        return self.inner.delete_step_jobs(namespace)

    def delete_pods(self, namespace: str, job_name: str) -> None:
        self.inner.delete_pods(namespace, job_name)

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.inner.event(obj, type_, reason, message)

    # ---- served from the caches

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.executions.get(namespace, name)
        if found is not None:
            return found
        fresh = self.inner.get_execution(namespace, name)  # a miss: read once, keep
        if fresh is not None:
            self.executions.observe(fresh)
        return fresh

    def list_jobs(self, namespace: str, execution: str) -> list[ObservedJob]:
        return self.jobs.jobs(namespace, execution)

    def job_generation(self, namespace: str, execution: str) -> int | None:
        return self.jobs.generation(namespace, execution)

    def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        try:
            written = self.inner.patch_status(namespace, name, patch)
        except Exception as e:
            if getattr(e, "status", None) == 404:  # gone meanwhile: not held any longer
                self.executions.discard(namespace, name)
            raise
        if written is not None:
            self.executions.observe(written)
        return written

    def gone(self, namespace: str) -> list[dict[str, Any]]:
        """Compare the held executions of a namespace with a fresh LIST (one request):
        keep the listed bodies, and drop and return those deleted while a watch was
        away (Kopf lists again after a broken watch, but reports no deletions). One
        created after the LIST (a version above every listed one) is not judged."""
        listed = self.inner.list_executions(namespace)
        names = set()
        top = 0
        for body in listed:
            self.executions.observe(body)
            names.add(body["metadata"]["name"])
            version = _version(body) or ""
            top = max(top, int(version) if version.isdigit() else 0)
        found = []
        for body in self.executions.held(namespace):
            version = _version(body) or ""
            newer_than_list = not version.isdigit() or int(version) > top
            if body["metadata"]["name"] not in names and not newer_than_list:
                self.executions.discard(namespace, body["metadata"]["name"])
                found.append(body)
        return found

    def claim(
        self, namespace: str, name: str, resource_version: str | None, repository_id: str
    ) -> bool:
        if self.inner.claim(namespace, name, resource_version, repository_id):
            return True  # the status write that follows brings the new version
        fresh = self.inner.get_execution(namespace, name)  # 409: read what came first
        if fresh is None:
            self.executions.discard(namespace, name)
        else:
            self.executions.observe(fresh)
        return False

    def create_job(self, manifest: dict[str, Any]) -> bool:
        created = self.inner.create_job(manifest)
        # Known at once (made now, or there already): the next round must not create it
        # again before the watch brings it; the watch's version then replaces this one.
        key = self.jobs.key_of(manifest)
        names = {j.name for j in self.jobs.jobs(*key)} if key is not None else set()
        if key is not None and manifest["metadata"]["name"] not in names:
            self.jobs.observe({**manifest, "status": {}})
        return created


if TYPE_CHECKING:
    _: type[Cluster] = CachedCluster  # mypy: a Cluster like the adapter it wraps
