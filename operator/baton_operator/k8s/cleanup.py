"""The two API calls of retention: delete a finished BatchExecution (only if it is
still the object the decision read) and set a step Job's ``ttlSecondsAfterFinished``.
:class:`Cleanup` is the role, :class:`ApiCleanup` the adapter; no decisions here."""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from baton_operator.k8s.cluster import WriteCounter
from baton_operator.k8s.resources import GROUP, PLURAL, VERSION


class Cleanup(Protocol):
    def delete_execution(self, namespace: str, name: str, uid: str, resource_version: str) -> bool:
        """Delete the BatchExecution if it still has this uid and resourceVersion (its
        Jobs and pods follow by ownerReference); False when it changed or is gone."""
        ...

    def set_job_ttl(self, namespace: str, name: str, seconds: int | None) -> None:
        """Set a Job's ``spec.ttlSecondsAfterFinished`` (None: keep it for good)."""
        ...


class ApiCleanup:
    """:class:`Cleanup` over the Kubernetes API server."""

    def __init__(self, count_write: WriteCounter = lambda verb, resource: None) -> None:
        self.batch = client.BatchV1Api()
        self.custom = client.CustomObjectsApi()
        self._count = count_write

    def delete_execution(self, namespace: str, name: str, uid: str, resource_version: str) -> bool:
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid, resource_version=resource_version),
            propagation_policy="Background",
        )
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body=options
            )
        except ApiException as e:
            if e.status in (404, 409):  # gone, or changed since read: decided again
                return False
            raise
        self._count("delete", "batchexecutions")
        return True

    def set_job_ttl(self, namespace: str, name: str, seconds: int | None) -> None:
        body: dict[str, Any] = {"spec": {"ttlSecondsAfterFinished": seconds}}
        try:
            self.batch.patch_namespaced_job(
                name, namespace, body, _content_type="application/merge-patch+json"
            )
        except ApiException as e:
            if e.status != 404:  # gone already: nothing to keep or let go
                raise
            return
        self._count("patch", "jobs")
