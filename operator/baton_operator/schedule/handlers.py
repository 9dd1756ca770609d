"""Kopf handlers of BatchSchedules: thin. Every schedule is ticked by the schedule
:class:`~baton_operator.ticker.Ticker` (every ``BATON_SCHEDULE_SECONDS``, 10 by default;
no Kopf timer, so no finalizer), and at once when its spec changes (a generation the
status has not acted on: ``suspend``, ``backfill``...). Only the active replica ticks
(the peering gate the execution ticker uses). Imported by :mod:`baton_operator.handlers`."""

from __future__ import annotations

import os
from typing import Any

import kopf

from baton_operator.k8s.resources import GROUP, VERSION
from baton_operator.k8s.schedule_api import ScheduleApi
from baton_operator.k8s.schedule_resources import SCHEDULES_PLURAL
from baton_operator.metrics import API_WRITES
from baton_operator.reconcile import selector
from baton_operator.schedule.controller import ScheduleController
from baton_operator.ticker import Ticker

SELECTOR = selector.parse(os.environ.get("BATON_WATCH_LABELS", ""))
NAMESPACES = frozenset(
    ns.strip() for ns in os.environ.get("BATON_WATCH_NAMESPACES", "").split(",") if ns.strip()
)
TICKING = "Scheduling"


def watched(namespace: str | None, **_: Any) -> bool:
    return not NAMESPACES or namespace in NAMESPACES


LABELS = {
    r.key: (kopf.ABSENT if not r.present else kopf.PRESENT if r.value is None else r.value)
    for r in SELECTOR
}


def _count_write(verb: str, resource: str) -> None:
    API_WRITES.labels(verb, resource).inc()


@kopf.on.startup()
def schedules_startup(memo: kopf.Memo, **_: Any) -> None:
    """After the operator's own startup (it made the repository and the peering gate)."""
    if "controller" not in memo or "gate" not in memo:
        raise kopf.TemporaryError("waiting for the operator's startup", delay=1)
    controller = ScheduleController(memo["controller"].repo, ScheduleApi(_count_write))
    memo["schedules"] = controller
    memo["schedule_ticker"] = Ticker(
        controller.tick,
        terminal=(),
        active=memo["gate"],
        interval=float(os.environ.get("BATON_SCHEDULE_SECONDS", "10")),
        workers=2,
    )
    memo["schedule_ticker"].start()


@kopf.on.cleanup()
def schedules_cleanup(memo: kopf.Memo, **_: Any) -> None:
    ticker: Ticker | None = memo.pop("schedule_ticker", None)
    if ticker is not None:
        ticker.stop()


@kopf.on.event(GROUP, VERSION, SCHEDULES_PLURAL, labels=LABELS, when=watched)
def schedule_event(
    type: str | None, name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    assert namespace is not None
    ticker: Ticker = memo["schedule_ticker"]
    if type == "DELETED":
        ticker.forget(namespace, name)
        return
    ticker.track(namespace, name, TICKING)
    generation = body.get("metadata", {}).get("generation")
    if generation != (body.get("status") or {}).get("observedGeneration"):
        controller: ScheduleController = memo["schedules"]
        controller.tick(namespace, name)
