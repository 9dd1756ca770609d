"""An in-memory stand-in for the Kubernetes API (the
:class:`~baton_operator.k8s.cluster.Cluster` the operator is written against; mypy
checks that it is one), whose Jobs run their step in-process with the real step
entrypoint."""

from __future__ import annotations

import copy
import itertools
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from baton.core.status import UnitKind
from baton.repository import JobRepository
from baton.step.runner import run_step
from baton_operator.k8s.cluster import ObservedJob
from baton_operator.k8s.informer import CachedCluster
from baton_operator.k8s.labels import (
    LABEL_EXECUTION,
    LABEL_KIND,
    LABEL_STEP,
    execution_id_of,
    partitions_of,
)

if TYPE_CHECKING:
    from baton_operator.k8s.cluster import Cluster


@dataclass
class FakeJob:
    manifest: dict[str, Any]
    active: int = 1
    complete: bool = False
    failed: bool = False
    reason: str = ""
    pods_deleted: int = 0
    exit_codes: list[int] = field(default_factory=list)


def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            into.pop(k, None)
        elif isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


class FakeCluster:
    def __init__(self) -> None:
        self.executions: dict[tuple[str, str], dict[str, Any]] = {}
        self.batch_jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}  # (ns, name): data
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}  # (ns, name): decoded data
        self.events: list[tuple[str, str, str]] = []
        self.writes: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()  # "get batchexecutions", "list jobs", ...
        # watch subscribers: (resource, event type, body), as the API server would send
        self.watchers: list[Callable[[str, str, dict[str, Any]], None]] = []
        self._version = 0
        self.lock = threading.Lock()
        self._gen = itertools.count(1)

    # ---- what tests do (kubectl)

    def apply_job(self, doc: dict[str, Any], namespace: str = "default") -> None:
        obj = copy.deepcopy(doc)
        obj["metadata"] = {**obj["metadata"], "namespace": namespace, "generation": 1}
        self.batch_jobs[(namespace, obj["metadata"]["name"])] = obj

    def apply_execution(self, name: str, spec: dict[str, Any], namespace: str = "default") -> None:
        self.executions[(namespace, name)] = {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchExecution",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "resourceVersion": "0",
                "creationTimestamp": f"2026-01-01T00:{len(self.executions) // 60:02d}:"
                f"{len(self.executions) % 60:02d}Z",
            },
            "spec": copy.deepcopy(spec),
        }
        self._emit("batchexecutions", "ADDED", self.executions[(namespace, name)])

    def patch_spec(self, name: str, patch: dict[str, Any], namespace: str = "default") -> None:
        merge(self.executions[(namespace, name)]["spec"], patch)
        self._bump(self.executions[(namespace, name)])
        self._emit("batchexecutions", "MODIFIED", self.executions[(namespace, name)])

    def delete_execution(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """kubectl delete: gone, with its DELETED event; returns the last body."""
        obj = self.executions.pop((namespace, name))
        self._emit("batchexecutions", "DELETED", obj)
        return obj

    def _emit(self, resource: str, type_: str, body: dict[str, Any]) -> None:
        for watcher in self.watchers:
            watcher(resource, type_, copy.deepcopy(body))

    def job_body(self, name: str) -> dict[str, Any]:
        """A Job as the API server shows it (what a watch event carries)."""
        j = self.jobs[name]
        conditions = []
        if j.complete:
            conditions.append({"type": "Complete", "status": "True"})
        if j.failed:
            conditions.append({"type": "Failed", "status": "True", "reason": j.reason})
        self._version += 1
        meta = {**j.manifest["metadata"], "resourceVersion": str(self._version)}
        return {
            **j.manifest,
            "metadata": meta,
            "status": {"active": j.active, "conditions": conditions},
        }

    def _job_changed(self, name: str, type_: str = "MODIFIED") -> None:
        self._emit("jobs", type_, self.job_body(name))

    def status(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return dict(self.executions[(namespace, name)].get("status") or {})

    def run_jobs(self, repo: JobRepository) -> int:
        """Run every active Job's pods to their end (in-process); return how many ran."""
        ran = 0
        for job in list(self.jobs.values()):
            if job.active and not job.complete and not job.failed:
                self.run_job(repo, job)
                ran += 1
        return ran

    def _secret_env(self, namespace: str, env: list[dict[str, Any]]) -> dict[str, str]:
        """What the kubelet puts into the container from ``secretKeyRef`` entries."""
        out: dict[str, str] = {}
        for e in env:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and e["name"].startswith("BATON_SECRET_PARAM_"):
                data = self.secrets.get((namespace, ref["name"])) or {}
                if ref["key"] in data:
                    out[e["name"]] = data[ref["key"]]
        return out

    def run_job(self, repo: JobRepository, job: FakeJob) -> int:
        """Run the Job's pods one index after another, as `baton step` would."""
        container = job.manifest["spec"]["template"]["spec"]["containers"][0]
        cmd = container["command"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        execution_id, step = int(cmd[2]), cmd[3]
        kind = cmd[cmd.index("--kind") + 1] if "--kind" in cmd else "step"
        partition = int(cmd[cmd.index("--partition") + 1]) if "--partition" in cmd else None
        pending = (
            [int(p) for p in env["BATON_PARTITIONS"].split(",")]
            if "BATON_PARTITIONS" in env
            else [partition]
        )
        extra = {k: v for k, v in env.items() if k.startswith("BATON_OUTCOME")}
        extra |= self._secret_env(job.manifest["metadata"]["namespace"], container["env"])
        saved = {k: os.environ.get(k) for k in extra}
        os.environ.update(extra)
        codes = []
        try:
            for part in pending:
                codes.append(int(run_step(repo, execution_id, step, part, kind=kind)))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        code = max(codes)
        job.exit_codes.extend(codes)
        job.active = 0
        if code == 0:
            job.complete = True
        else:
            job.failed, job.reason = True, "PodFailurePolicy"
        self._job_changed(job.manifest["metadata"]["name"])
        return code

    def pod(self, job_name: str, *, waiting: tuple[str, str] | None = None) -> dict[str, Any]:
        """The Job's pod as the API server shows it: its container waiting with
        (reason, message), e.g. a missing Secret; else running."""
        template = self.jobs[job_name].manifest["spec"]["template"]
        state = (
            {"waiting": {"reason": waiting[0], "message": waiting[1]}}
            if waiting
            else {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
        )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job_name}-0-x7k2p",
                "namespace": self.jobs[job_name].manifest["metadata"]["namespace"],
                "labels": {**template["metadata"]["labels"], "job-name": job_name},
            },
            "status": {
                "phase": "Pending" if waiting else "Running",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "step", "ready": not waiting, "state": state}],
            },
        }

    # ---- the Cluster interface the operator uses

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads["get batchexecutions"] += 1
        obj = self.executions.get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def get_batch_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.batch_jobs.get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.config_maps.get((namespace, name))
        return None if found is None else dict(found)

    def get_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.secrets.get((namespace, name))
        return None if found is None else dict(found)

    def list_executions(self, namespace: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (ns, _), o in self.executions.items() if ns == namespace]

    def patch_job_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        with self.lock:
            self.writes["patch batchjobs/status"] += 1
            merge(self.batch_jobs[(namespace, name)].setdefault("status", {}), patch)

    def list_jobs(self, namespace: str, execution: str) -> list[ObservedJob]:
        self.reads["list jobs"] += 1
        out = []
        for name, j in self.jobs.items():
            labels = j.manifest["metadata"]["labels"]
            if labels[LABEL_EXECUTION] != execution:
                continue
            out.append(
                ObservedJob(
                    name=name,
                    step=labels[LABEL_STEP],
                    execution_id=execution_id_of(labels),
                    kind=UnitKind(labels[LABEL_KIND]),
                    partitions=partitions_of(j.manifest["metadata"]["annotations"]),
                    active=j.active,
                    complete=j.complete,
                    failed_condition=j.failed,
                    failed_reason=j.reason,
                )
            )
        return out

    def job_generation(self, namespace: str, execution: str) -> int | None:
        return None  # no cache: every list_jobs is fresh

    def create_job(self, manifest: dict[str, Any]) -> bool:
        name = manifest["metadata"]["name"]
        if name in self.jobs:
            return False
        self.jobs[name] = FakeJob(copy.deepcopy(manifest))
        self.writes["create jobs"] += 1
        self._job_changed(name, "ADDED")
        return True

    def delete_step_jobs(self, namespace: str) -> int:
        mine = [n for n, j in self.jobs.items() if j.manifest["metadata"]["namespace"] == namespace]
        for name in mine:
            self.delete_job(name)
            self.writes["delete jobs"] += 1
        return len(mine)

    def delete_pods(self, namespace: str, job_name: str) -> None:
        self.jobs[job_name].pods_deleted += 1
        self.writes["delete pods"] += 1

    def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        obj = self.executions[(namespace, name)]
        status = obj.setdefault("status", {})
        merge(status, patch)
        self._bump(obj)
        self.writes["patch status"] += 1
        self._emit("batchexecutions", "MODIFIED", obj)
        return copy.deepcopy(obj)

    def claim(
        self, namespace: str, name: str, resource_version: str | None, repository_id: str
    ) -> bool:
        obj = self.executions[(namespace, name)]
        if resource_version and obj["metadata"]["resourceVersion"] != resource_version:
            self.writes["conflicts"] += 1
            return False
        self.patch_status(namespace, name, {"repositoryId": repository_id})
        return True

    def _bump(self, obj: dict[str, Any]) -> None:
        """A new resourceVersion on every write, as the API server gives."""
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))
        self.writes["create events"] += 1

    def delete_job(self, name: str) -> None:
        body = self.job_body(name)
        del self.jobs[name]
        self._emit("jobs", "DELETED", body)


def cached(
    fake: FakeCluster, enqueue: Callable[[str, str], None] = lambda ns, name: None
) -> CachedCluster:
    """The operator's watch-fed cache over the fake, fed by the fake's watch events as
    the Kopf handlers feed it from the API server's (what exists now is listed first),
    and queueing what the handlers queue: an execution's news, a Job's end or deletion."""
    cache = CachedCluster(fake)

    def watch(resource: str, type_: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        if resource == "batchexecutions":
            if type_ == "DELETED":
                cache.executions.discard(meta["namespace"], meta["name"])
            elif cache.executions.observe(body):
                enqueue(meta["namespace"], meta["name"])
            return
        if type_ == "DELETED":
            cache.jobs.discard(body)
        else:
            cache.jobs.observe(body)
        if type_ == "DELETED" or body["status"]["conditions"]:
            enqueue(meta["namespace"], meta["labels"][LABEL_EXECUTION])

    for obj in fake.executions.values():
        cache.executions.observe(copy.deepcopy(obj))
    for name in fake.jobs:
        cache.jobs.observe(fake.job_body(name))
    fake.watchers.append(watch)
    return cache


if TYPE_CHECKING:
    # The fake stands for the real adapter: mypy refuses it if a method is missing or
    # its signature differs from the Cluster protocol's.
    _: Cluster = FakeCluster()
