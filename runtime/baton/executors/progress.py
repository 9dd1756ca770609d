"""What the local executor's progress display shows: the step rows as the executor
last read them (when a unit ended), with the newer counts that running units sent as
events (:mod:`baton.step.events`): live progress without reading the repository."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from typing import Any

from baton.core.entities import JobExecution, StepExecution
from baton.core.errors import BatonError
from baton.executors.units import Running
from baton.repository import JobRepository

Tick = Callable[[JobExecution, list[StepExecution]], None]
TICK_SECONDS = 0.1  # progress events are shown at most this often


class LiveProgress:
    def __init__(self, repo: JobRepository, on_tick: Tick | None):
        self.repo = repo
        self.on_tick = on_tick
        self.records: list[StepExecution] = []  # as the repository last said
        self._live: dict[int, StepExecution] = {}  # step id -> as its unit's events say
        self._execution: JobExecution | None = None
        self._shown = 0.0

    def event(self, running: Running, event: dict[str, Any]) -> bool:
        """One event of a unit; True for one that changes the flow (partitions added)."""
        kind = event.get("event")
        if kind == "open" and isinstance(event.get("step_id"), int):
            running.step_id = event["step_id"]
            if self.on_tick is not None:
                with suppress(BatonError):  # once per unit: its row, for the display
                    self._live[event["step_id"]] = self.repo.get_step(event["step_id"])
        live = self._live.get(running.step_id) if running.step_id is not None else None
        if live is not None and kind in ("chunk", "total"):
            fields: dict[str, Any] = {
                k: v for k, v in event.items() if k != "event" and isinstance(v, int)
            }
            if kind == "total":
                fields = {"total_count": fields.get("total", live.total_count)}
            with suppress(TypeError):  # a field the row does not have: not shown
                self._live[live.id] = replace(live, **fields)
            self.show(self._execution)
        return kind == "partitions"

    def show(self, execution: JobExecution | None, force: bool = False) -> None:
        """Call ``on_tick`` (at most every TICK_SECONDS unless ``force``)."""
        now = time.monotonic()
        if self.on_tick is None or execution is None:
            return
        if not force and now - self._shown < TICK_SECONDS:
            return
        self._execution, self._shown = execution, now
        known = {s.id for s in self.records}
        steps = [self._live.get(s.id, s) if s.status.running else s for s in self.records]
        steps += [s for i, s in self._live.items() if i not in known]
        with suppress(BatonError):  # a display glitch must not fail the job
            self.on_tick(execution, steps)
