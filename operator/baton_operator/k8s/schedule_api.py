"""The Kubernetes API calls of the schedule controller: its BatchSchedule, the
BatchExecutions it made (by label), and the writes it applies. No decisions here."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from baton_operator.k8s.cluster import ApiCluster, _event_body
from baton_operator.k8s.resources import GROUP, PLURAL, VERSION
from baton_operator.k8s.schedule_resources import LABEL_SCHEDULE, SCHEDULES_PLURAL

log = logging.getLogger("baton.operator")


class ScheduleApi(ApiCluster):
    """:class:`ApiCluster` plus what a schedule reads and writes."""

    def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(namespace, SCHEDULES_PLURAL, name)

    def schedule_executions(self, namespace: str, schedule: str) -> list[dict[str, Any]]:
        found: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector=f"{LABEL_SCHEDULE}={schedule}"
        )
        return [dict(i) for i in found.get("items", [])]

    def create_execution(self, body: dict[str, Any]) -> bool:
        """False when it exists already: the window's name is taken (exactly once)."""
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body
            )
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        self._count("create", "batchexecutions")
        return True

    def patch_execution_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
        )
        self._count("patch", "batchexecutions")

    def delete_execution(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            self._count("delete", "batchexecutions")
        except ApiException as e:
            if e.status != 404:
                raise

    def patch_schedule_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, SCHEDULES_PLURAL, name, {"status": patch}
        )
        self._count("patch", "batchschedules/status")

    def schedule_event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        try:
            self.core.create_namespaced_event(
                meta["namespace"], _event_body(obj, type_, reason, message, "BatchSchedule")
            )
            self._count("create", "events")
        except ApiException as e:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], e.reason)
