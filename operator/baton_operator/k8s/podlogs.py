"""The step pods of a BatchExecution as log sources, for ``baton logs NAME``: found by
the label ``baton.dev/execution`` (step, compensation and callback pods alike), each
mapped to its unit by its labels (``baton.dev/step``, ``baton.dev/kind``) and its
partition by its Job's ``baton.dev/partitions`` annotation at the pod's completion
index (else, for a Job already gone, by the pod's own ``BATON_PARTITIONS`` or
``--partition``). The reads are a kubectl user's: list pods and Jobs, read a pod's log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from baton.core.logsources import LogSource
from baton.core.status import UnitKind
from baton.spec.template import STEP_CONTAINER as CONTAINER

from baton_operator.k8s.client import ClusterError, ClusterJobOperator, _call
from baton_operator.k8s.labels import (
    ANNOTATION_PARTITIONS,
    LABEL_EXECUTION,
    LABEL_KIND,
    LABEL_STEP,
    partitions_of,
)
from baton_operator.k8s.resources import Phase

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
JOB_NAME_KEYS = ("batch.kubernetes.io/job-name", "job-name")
# a pod whose step container has not started yet has no log to read
STARTED = ("Running", "Succeeded", "Failed")
ENDED = ("Succeeded", "Failed")


def pod_partition(pod: Mapping[str, Any], job_partitions: str | None) -> int | None:
    """The partition a step pod runs: its Job's partitions annotation (None when the
    Job is gone: the pod's ``BATON_PARTITIONS``) at the pod's completion index; a
    compensation's one partition; else its ``--partition`` argument."""
    meta = pod.get("metadata") or {}
    index = (meta.get("labels") or {}).get(INDEX_KEY) or (meta.get("annotations") or {}).get(
        INDEX_KEY
    )
    container: Mapping[str, Any] = next(
        (c for c in (pod.get("spec") or {}).get("containers", []) if c.get("name") == CONTAINER),
        {},
    )
    if job_partitions is None:
        env = {e.get("name"): e.get("value") for e in container.get("env") or []}
        job_partitions = env.get("BATON_PARTITIONS")
    parts = partitions_of({ANNOTATION_PARTITIONS: job_partitions or ""})
    if parts is not None:
        if index is not None and str(index).isdigit() and int(index) < len(parts):
            return parts[int(index)]
        if len(parts) == 1:
            return parts[0]
    command = [str(a) for a in container.get("command") or []]
    if "--partition" in command[:-1]:
        value = command[command.index("--partition") + 1]
        return int(value) if value.isdigit() else None
    return None


def pod_source(pod: Mapping[str, Any], jobs: Mapping[str, str]) -> LogSource | None:
    """A step pod as a log source (None for a pod without Baton's labels); ``jobs``:
    each Job's partitions annotation by Job name."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if LABEL_STEP not in labels:
        return None
    try:
        kind = UnitKind(labels.get(LABEL_KIND) or UnitKind.STEP.value)
    except ValueError:
        return None
    job = next((labels[k] for k in JOB_NAME_KEYS if k in labels), None)
    partition = pod_partition(pod, jobs.get(job) if job else None)
    order = (str(meta.get("creationTimestamp") or ""),)
    return LogSource(kind, labels[LABEL_STEP], partition, order, str(meta.get("name")))


def pod_state(pod: Mapping[str, Any]) -> str:
    """``pending`` (no log yet), ``running`` or ``ended``."""
    phase = (pod.get("status") or {}).get("phase")
    if phase in ENDED:
        return "ended"
    return "running" if phase in STARTED else "pending"


class PodLogs:
    """The log provider of one BatchExecution in a cluster (see ``baton.cli.logs``)."""

    def __init__(self, op: ClusterJobOperator, name: str):
        from kubernetes import client

        self.op, self.name, self.namespace = op, name, op.namespace
        self.core, self.batch = client.CoreV1Api(), client.BatchV1Api()
        self.serialize = client.ApiClient().sanitize_for_serialization
        self.op.get(name)  # an unknown execution: one line, exit 5

    def sources(self) -> list[tuple[LogSource, str]]:
        selector = f"{LABEL_EXECUTION}={self.name}"
        ns = self.namespace
        pods = _call(lambda: self.core.list_namespaced_pod(ns, label_selector=selector))
        jobs = _call(lambda: self.batch.list_namespaced_job(ns, label_selector=selector))
        partitions = {
            j.metadata.name: (j.metadata.annotations or {}).get(ANNOTATION_PARTITIONS, "")
            for j in jobs.items
        }
        out = []
        for pod in map(self.serialize, pods.items):
            source = pod_source(pod, partitions)
            if source is not None:
                out.append((source, pod_state(pod)))
        return out

    def lines(self, source: LogSource, follow: bool) -> Iterator[str]:
        """The pod's log, line by line (``follow``: until its container ends)."""
        response = _call(
            lambda: self.core.read_namespaced_pod_log(
                source.ref,
                self.namespace,
                container=CONTAINER,
                follow=follow,
                _preload_content=False,
            )
        )
        try:
            pending = b""
            for data in response.stream(None, decode_content=True):  # chunk by chunk
                pending += data
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace")
            if pending:
                yield pending.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def ended(self) -> bool:
        """The execution is in a terminal phase (or gone): no pod of it starts again."""
        try:
            phase = (self.op.get(self.name).get("status") or {}).get("phase")
        except ClusterError:  # deleted meanwhile
            return True
        return phase is not None and Phase(phase).terminal
