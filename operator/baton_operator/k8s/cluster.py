"""The few Kubernetes API calls the operator makes: :class:`Cluster` is the role (a
Protocol the operator's code is written against, and the test fake implements),
:class:`ApiCluster` the adapter over the official client. No decisions here."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from baton.core.errors import InvalidParameters
from baton.core.status import UnitKind
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from baton_operator.k8s.labels import (
    LABEL_EXECUTION,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_STEP,
    MANAGER,
    execution_id_of,
    partitions_of,
)
from baton_operator.k8s.resources import GROUP, JOBS_PLURAL, PLURAL, VERSION

log = logging.getLogger("baton.operator")

# (verb, resource) of each API write, e.g. ("patch", "batchexecutions/status"): counted
# by the caller (the operator's metrics live above this layer).
WriteCounter = Callable[[str, str], None]


@dataclass(frozen=True)
class ObservedJob:
    """A batch/v1 Job of an execution, as the cluster reports it."""

    name: str
    step: str
    execution_id: int
    kind: UnitKind = UnitKind.STEP
    partitions: tuple[int, ...] | None = None
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    failed_condition: bool = False
    failed_reason: str = ""
    deleting: bool = False

    @property
    def finished(self) -> bool:
        return self.complete or self.failed_condition


class Cluster(Protocol):
    """What the operator reads from and writes to the cluster."""

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def get_batch_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_executions(self, namespace: str) -> list[dict[str, Any]]: ...

    def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's ``data``; None when there is no such ConfigMap."""
        ...

    def get_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's ``data``, decoded; None when there is no such Secret."""
        ...

    def patch_job_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None: ...

    def list_jobs(self, namespace: str, execution: str) -> list[ObservedJob]: ...

    def job_generation(self, namespace: str, execution: str) -> int | None:
        """A number that moves whenever a Job of the execution changes, for a cache that
        can tell (None: cannot; then no repository state read earlier is reused)."""
        ...

    def create_job(self, manifest: dict[str, Any]) -> bool:
        """Create a Job; False when it already exists (an earlier reconcile made it)."""
        ...

    def delete_step_jobs(self, namespace: str) -> int:
        """Delete the operator's Jobs in ``namespace``; how many."""
        ...

    def delete_pods(self, namespace: str, job_name: str) -> None: ...

    def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Apply a JSON merge patch to a BatchExecution's ``.status``; the object as
        written (what a watch-fed cache keeps), or None when the adapter has none."""
        ...

    def claim(
        self, namespace: str, name: str, resource_version: str | None, repository_id: str
    ) -> bool:
        """Set ``status.repositoryId`` only if the BatchExecution is still at
        ``resource_version`` (optimistic concurrency); False when another write came
        first (HTTP 409)."""
        ...

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event on a BatchExecution (never fails the caller)."""
        ...


def load_kube_config() -> None:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def _observed(j: Any) -> ObservedJob:
    """An ObservedJob from the official client's V1Job."""
    serializer = client.ApiClient.get_default()  # type: ignore[no-untyped-call]
    return observed_job(serializer.sanitize_for_serialization(j))


def observed_job(body: Mapping[str, Any]) -> ObservedJob:
    """An ObservedJob from a Job as JSON (a watch event's object, or a manifest just
    created: no status yet)."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = body.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    failed = conds.get("Failed")
    return ObservedJob(
        name=meta["name"],
        step=labels.get(LABEL_STEP, ""),
        execution_id=execution_id_of(labels),
        kind=UnitKind(labels.get(LABEL_KIND, UnitKind.STEP)),
        partitions=partitions_of(meta.get("annotations") or {}),
        active=status.get("active") or 0,
        succeeded=status.get("succeeded") or 0,
        failed=status.get("failed") or 0,
        complete="Complete" in conds,
        failed_condition=failed is not None,
        failed_reason=(failed.get("reason") or "") if failed else "",
        deleting=meta.get("deletionTimestamp") is not None,
    )


def _event_body(
    obj: dict[str, Any], type_: str, reason: str, message: str, kind: str = "BatchExecution"
) -> Any:
    meta = obj["metadata"]
    now = dt.datetime.now(dt.UTC)
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
        involved_object=client.V1ObjectReference(
            api_version=f"{GROUP}/{VERSION}",
            kind=kind,
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            resource_version=meta.get("resourceVersion"),
        ),
        type=type_,
        reason=reason,
        message=message[:1000],
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component="baton-operator"),
        reporting_component="baton.dev/operator",
        reporting_instance="baton-operator",
    )


class ApiCluster:
    """:class:`Cluster` over the Kubernetes API server (the official client)."""

    def __init__(self, count_write: WriteCounter = lambda verb, resource: None) -> None:
        self.core = client.CoreV1Api()
        self.batch = client.BatchV1Api()
        self.custom = client.CustomObjectsApi()
        self._count = count_write

    def _get(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            obj: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
            return dict(obj)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(namespace, PLURAL, name)

    def get_batch_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(namespace, JOBS_PLURAL, name)

    def list_executions(self, namespace: str) -> list[dict[str, Any]]:
        found: Any = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return [dict(i) for i in found.get("items", [])]

    def _read(self, kind: str, read: Callable[[str, str], Any], namespace: str, name: str) -> Any:
        """A ConfigMap or Secret a parameter names; None when it does not exist. Refused
        by RBAC: the launch is rejected with what to grant (not retried hot)."""
        try:
            return read(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            if e.status == 403:
                raise InvalidParameters(
                    f"the operator may not read {kind} '{name}' in namespace {namespace} "
                    f"(403 Forbidden: its ServiceAccount needs get on {kind.lower()}s)"
                ) from None
            raise

    def get_config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._read("ConfigMap", self.core.read_namespaced_config_map, namespace, name)
        return None if found is None else dict(found.data or {})

    def get_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self._read("Secret", self.core.read_namespaced_secret, namespace, name)
        if found is None:
            return None
        data = {
            k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (found.data or {}).items()
        }
        return {**data, **(found.string_data or {})}

    def patch_job_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, JOBS_PLURAL, name, {"status": patch}
        )
        self._count("patch", "batchjobs/status")

    def list_jobs(self, namespace: str, execution: str) -> list[ObservedJob]:
        found: Any = self.batch.list_namespaced_job(
            namespace, label_selector=f"{LABEL_EXECUTION}={execution}"
        )
        return [_observed(j) for j in found.items]

    def job_generation(self, namespace: str, execution: str) -> int | None:
        return None  # every list_jobs is a fresh LIST

    def create_job(self, manifest: dict[str, Any]) -> bool:
        try:
            self.batch.create_namespaced_job(
                manifest["metadata"]["namespace"],
                manifest,  # type: ignore[arg-type]
            )
            self._count("create", "jobs")
            return True
        except ApiException as e:
            if e.status == 409:  # already there: an earlier reconcile made it
                return False
            raise

    def delete_step_jobs(self, namespace: str) -> int:
        """Delete the operator's Jobs in ``namespace`` (background propagation); how many.
        Forbidden (a namespace this operator does not serve) deletes nothing."""
        try:
            found: Any = self.batch.list_namespaced_job(
                namespace, label_selector=f"{LABEL_MANAGED_BY}={MANAGER}"
            )
        except ApiException as e:
            if e.status in (403, 404):
                return 0
            raise
        deleted = 0
        for j in found.items:
            if j.metadata.deletion_timestamp is not None:
                continue
            try:
                self.batch.delete_namespaced_job(
                    j.metadata.name, namespace, propagation_policy="Background"
                )
                self._count("delete", "jobs")
                deleted += 1
            except ApiException as e:
                if e.status != 404:
                    raise
        return deleted

    def delete_pods(self, namespace: str, job_name: str) -> None:
        pods: Any = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}")
        for p in pods.items:
            if p.metadata.deletion_timestamp is None and p.status.phase in ("Pending", "Running"):
                try:
                    self.core.delete_namespaced_pod(p.metadata.name, namespace)
                    self._count("delete", "pods")
                except ApiException as e:
                    if e.status != 404:
                        raise

    def _patch_execution_status(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """One merge patch of the status subresource, counted when it was written."""
        written: Any = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, body
        )
        self._count("patch", "batchexecutions/status")
        return dict(written)

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._patch_execution_status(namespace, name, {"status": patch})

    def claim(
        self, namespace: str, name: str, resource_version: str | None, repository_id: str
    ) -> bool:
        body: dict[str, Any] = {"status": {"repositoryId": repository_id}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self._patch_execution_status(namespace, name, body)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        try:
            self.core.create_namespaced_event(
                meta["namespace"], _event_body(obj, type_, reason, message)
            )
            self._count("create", "events")
        except ApiException as e:  # an event is never worth failing a reconcile
            log.warning("could not post event %s on %s: %s", reason, meta["name"], e.reason)
