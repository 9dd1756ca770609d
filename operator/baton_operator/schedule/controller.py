"""The schedule controller: one tick of one BatchSchedule — read it, its BatchJob and
BatchExecutions, ask the repository once about the tick's windows, decide
(:func:`baton_operator.schedule.decide.decide`), apply, write the status.

Ticked by a :class:`baton_operator.ticker.Ticker` of its own (every
``BATON_SCHEDULE_SECONDS``, no Kopf timer: no finalizer on the schedules) and at once
when a schedule's spec changes (a new generation)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from baton.core.errors import BatonError
from baton.core.parameters import ParamType
from baton.repository import JobRepository
from baton.repository.windows import window_records
from baton.schedule.keys import window_kind
from baton.schedule.model import ScheduleSpec
from baton.schedule.windows import Schedule
from baton.spec.manifests import first_error
from baton.spec.model import BatchJob
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from baton_operator.k8s.resources import Condition, parse_time
from baton_operator.k8s.schedule_api import ScheduleApi
from baton_operator.k8s.schedule_resources import ScheduleStatus
from baton_operator.patching import status_patch
from baton_operator.reconcile.conditions import set_condition
from baton_operator.schedule.decide import MAX_NAME, Decision, Observed, decide, windows_of

log = logging.getLogger("baton.operator")

Clock = Callable[[], dt.datetime]


class NotReady(Exception):
    """The schedule cannot tick: (reason, message) for its Ready=False condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ScheduleController:
    def __init__(self, repo: JobRepository, api: ScheduleApi, clock: Clock = _utcnow) -> None:
        self.repo = repo
        self.api = api
        self.clock = clock
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def tick(self, namespace: str, name: str) -> str | None:
        """One tick; None when the schedule is gone (the ticker forgets it)."""
        with self._guard:
            lock = self._locks.setdefault((namespace, name), threading.Lock())
        with lock:
            obj = self.api.get_schedule(namespace, name)
            if obj is None:
                with self._guard:
                    self._locks.pop((namespace, name), None)
                return None
            self._tick(obj)
            return "Scheduling"

    def _tick(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        namespace = meta["namespace"]
        status = ScheduleStatus.model_validate(obj.get("status") or {})
        now = self.clock()
        try:
            spec, engine, kind = self._read(namespace, obj)
            observed = Observed(
                name=meta["name"],
                namespace=namespace,
                uid=meta.get("uid", ""),
                labels=meta.get("labels") or {},
                created=parse_time(meta.get("creationTimestamp")) or now,
                status=status,
                executions=self.api.schedule_executions(namespace, meta["name"]),
            )
            wins = windows_of(spec, engine, kind, observed, now)
        except NotReady as e:
            return self._write(obj, status, ("False", e.reason, e.message), now)
        except BatonError as e:
            return self._write(obj, status, ("False", "Invalid", str(e)), now)
        keys = set(wins.keys.values())
        records = window_records(self.repo, namespace, spec.job, spec.window_parameter, keys)
        decision = decide(spec, engine, kind, observed, wins, records, now)
        self._apply(obj, decision)
        return self._write(obj, decision.status, ("True", "Scheduling", ""), now)

    def _read(
        self, namespace: str, obj: dict[str, Any]
    ) -> tuple[ScheduleSpec, Schedule, ParamType]:
        name = obj["metadata"]["name"]
        if len(name) > MAX_NAME:
            raise NotReady("Invalid", f"name longer than {MAX_NAME} characters")
        try:
            spec = ScheduleSpec.model_validate(obj.get("spec") or {})
        except ValidationError as e:
            raise NotReady("Invalid", first_error(e)) from None
        engine = spec.engine()
        found = self.api.get_batch_job(namespace, spec.job)
        if found is None:
            raise NotReady("JobNotFound", f"no BatchJob '{spec.job}' in namespace {namespace}")
        try:
            job = BatchJob.model_validate({k: found[k] for k in ("metadata", "spec")})
        except ValidationError as e:
            raise NotReady("InvalidJob", first_error(e)) from None
        return spec, engine, window_kind(job.spec, spec.window_parameter)

    def _apply(self, obj: dict[str, Any], decision: Decision) -> None:
        """Each write on its own: one refused (a Warning event) never stops the others."""
        namespace = obj["metadata"]["namespace"]
        writes: list[tuple[str, str, Callable[[], Any]]] = []
        for body in decision.create:
            name = body["metadata"]["name"]
            writes.append(("WindowLaunched", name, partial(self.api.create_execution, body)))
        for name, bump in decision.restart:
            patch = partial(
                self.api.patch_execution_spec, namespace, name, {"restart": bump, "stop": False}
            )
            writes.append(("WindowRestarted", f"{name}: restart {bump}", patch))
        for name in decision.stop:
            stop = partial(self.api.patch_execution_spec, namespace, name, {"stop": True})
            writes.append(("WindowReplaced", f"{name}: stopping", stop))
        for name in decision.delete:
            writes.append(("", name, partial(self.api.delete_execution, namespace, name)))
        for reason, message, write in writes:
            try:
                done = write()
            except ApiException as e:
                self._event(obj, "Warning", "WriteFailed", f"{message}: {e.status} {e.reason}")
                continue
            if reason and done is not False:
                self._event(obj, "Normal", reason, message)
        for type_, reason, message in decision.events:
            self._event(obj, type_, reason, message)

    def _event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        log.info(
            "%s/%s: %s %s", obj["metadata"]["namespace"], obj["metadata"]["name"], reason, message
        )
        self.api.schedule_event(obj, type_, reason, message)

    def _write(
        self,
        obj: dict[str, Any],
        status: ScheduleStatus,
        ready: tuple[Any, str, str],
        now: dt.datetime,
    ) -> None:
        truth, reason, message = ready
        conditions: list[Condition] = list(status.conditions or [])
        status.conditions = set_condition(conditions, "Ready", truth, reason, message, now)
        status.observed_generation = obj["metadata"].get("generation")
        patch = status_patch(obj.get("status"), status.dump())
        if patch:
            meta = obj["metadata"]
            self.api.patch_schedule_status(meta["namespace"], meta["name"], patch)
