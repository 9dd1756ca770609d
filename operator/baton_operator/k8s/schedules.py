"""BatchSchedules from the CLI: ``baton backfill NAME`` sets ``spec.backfill`` (the
operator carries it out, one engine for both) and may wait for its progress."""

from __future__ import annotations

import time
from typing import Any

from baton.schedule.keys import backfill_windows, parse_window_time
from baton.schedule.model import ScheduleSpec

from baton_operator.k8s.client import ClusterError, NamespacedObjects, _api, default_namespace
from baton_operator.k8s.schedule_resources import SCHEDULES_PLURAL


class ClusterSchedules(NamespacedObjects):
    plural = SCHEDULES_PLURAL

    def __init__(
        self,
        namespace: str | None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        api: Any = None,
    ) -> None:
        self.api = api if api is not None else _api(kubeconfig, context)
        self.namespace = namespace or default_namespace(kubeconfig, context)

    def backfill(self, name: str, start: str, end: str, max_running: int) -> dict[str, Any]:
        """Check the times against the schedule (its zone, from <= to, at most 1000
        windows), then set spec.backfill."""
        spec = ScheduleSpec.model_validate(self.get(name)["spec"])
        engine = spec.engine()
        first = parse_window_time(start, engine.zone(), "--from")
        last = parse_window_time(end, engine.zone(), "--to")
        backfill_windows(engine, first, last)
        return self._patch(
            name, {"backfill": {"from": start, "to": end, "maxRunning": max_running}}
        )

    def wait_backfill(
        self, name: str, timeout: float = 24 * 3600, poll: float = 2
    ) -> dict[str, Any]:
        """Until status.backfill reports the current spec.backfill done."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(name)
            want = obj["spec"].get("backfill") or {}
            got = (obj.get("status") or {}).get("backfill") or {}
            if got.get("done") and (got.get("from"), got.get("to")) == (
                want.get("from"),
                want.get("to"),
            ):
                return obj
            if time.monotonic() > deadline:
                raise ClusterError(f"backfill of {name} not done after {timeout:g}s")
            time.sleep(poll)
