"""What one tick of a BatchSchedule does in the cluster. Pure: the controller reads the
schedule, its BatchExecutions and the repository's word on the tick's windows (one
query), and applies the :class:`Decision`.

Exactly once per window: the window is an identifying parameter, so the repository
refuses a second run of a COMPLETED window and restarts a FAILED one (same instance,
from its checkpoint); and a window's BatchExecution has a deterministic name
(``<schedule>-<window stamp>``), so a second operator, a retry after a crash or a lost
status write gets 409 AlreadyExists instead of a second execution."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from baton.core.parameters import ParamType
from baton.schedule.keys import (
    BackfillProgress,
    WindowRecord,
    backfill_plan,
    backfill_windows,
    candidates,
    parse_window_time,
    stamp,
    tick_of,
    window_key,
)
from baton.schedule.model import ScheduleSpec
from baton.schedule.windows import (
    Launch,
    Missed,
    Restart,
    Schedule,
    Stop,
    Tick,
    WindowStatus,
    next_window,
    plan,
)

from baton_operator.k8s.resources import API_VERSION, TERMINAL_PHASES, Phase, iso, parse_time
from baton_operator.k8s.schedule_resources import (
    LABEL_SCHEDULE,
    LABEL_WINDOW,
    BackfillStatus,
    ScheduleStatus,
)

TERMINAL = {p.value for p in TERMINAL_PHASES}
RESTARTABLE = {Phase.FAILED.value, Phase.STOPPED.value}
MAX_NAME = 50  # <name>-<12-digit stamp> stays a valid label value (63)


@dataclass(frozen=True)
class Observed:
    """The schedule as read at this tick, and its BatchExecutions (by label)."""

    name: str
    namespace: str
    uid: str
    labels: Mapping[str, str]
    created: dt.datetime
    status: ScheduleStatus
    executions: list[dict[str, Any]]


@dataclass
class Decision:
    create: list[dict[str, Any]] = field(default_factory=list)
    restart: list[tuple[str, int]] = field(default_factory=list)  # (name, new spec.restart)
    stop: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    status: ScheduleStatus = field(default_factory=ScheduleStatus)


@dataclass(frozen=True)
class Windows:
    """The tick's windows: window → key, and the backfill's windows."""

    keys: dict[dt.datetime, str]
    since: dt.datetime
    backfill: list[dt.datetime]


def windows_of(
    spec: ScheduleSpec, engine: Schedule, kind: ParamType, obs: Observed, now: dt.datetime
) -> Windows:
    """The windows this tick looks at (the due ones, the recent ones that may be
    restarted, the backfill's): what the repository is asked about."""
    since = parse_time(obs.status.last_scheduled_window) or obs.created
    found = candidates(engine, since, now)
    filled: list[dt.datetime] = []
    if spec.backfill is not None:
        zone = engine.zone()
        start = parse_window_time(spec.backfill.from_, zone, "backfill.from")
        end = parse_window_time(spec.backfill.to, zone, "backfill.to")
        filled = backfill_windows(engine, start, end)
    zone = engine.zone()
    keys = {w: window_key(kind, w, zone) for w in sorted({*found, *filled})}
    return Windows(keys, since, filled)


def _param(execution: dict[str, Any], name: str) -> str | None:
    params = execution["spec"].get("parameters")
    value = params.get(name) if isinstance(params, dict) else None
    return None if value is None else str(value)


def in_flight(execution: dict[str, Any]) -> bool:
    """Not terminal yet, or a restart asked for that the operator has not launched."""
    status = execution.get("status") or {}
    asked = int(execution["spec"].get("restart", 0) or 0)
    return status.get("phase") not in TERMINAL or asked > int(status.get("observedRestart") or 0)


def by_key(obs: Observed, parameter: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in obs.executions:
        key = _param(e, parameter)
        if key is not None:
            out[key] = e
    return out


def decide(
    spec: ScheduleSpec,
    engine: Schedule,
    kind: ParamType,
    obs: Observed,
    wins: Windows,
    records: Mapping[str, WindowRecord],
    now: dt.datetime,
) -> Decision:
    """The tick: the engine's plan, the backfill's, the history limits, the status."""
    existing = by_key(obs, spec.window_parameter)
    overrides = {k: WindowStatus.RUNNING for k, e in existing.items() if in_flight(e)}
    tick = tick_of(wins.since, now, wins.keys, records, overrides)
    filling = set(wins.backfill)  # the backfill's windows: restarted by it alone
    scheduled = {w: k for w, k in wins.keys.items() if w not in filling}
    planned = plan(engine, tick_of(wins.since, now, scheduled, records, overrides))
    out = Decision()
    acted: set[str] = set()
    apply = _Applier(spec, engine, kind, obs, existing, out, acted)
    for action in planned.actions:
        key = wins.keys.get(action.window) or window_key(kind, action.window, engine.zone())
        if isinstance(action, Missed):
            out.events.append(("Warning", "MissedWindow", f"window {key} missed: past deadline"))
        elif isinstance(action, Stop):
            apply.stop(key)
        elif isinstance(action, Restart):
            apply.restart(action.window, key)
        elif isinstance(action, Launch):
            apply.launch(action.window, key)
    progress = _backfill(spec, engine, wins, tick, apply)
    out.delete = history(spec, obs.executions, acted)
    out.status = _status(spec, engine, obs, tick, planned.since, progress, out, now)
    return out


def _backfill(
    spec: ScheduleSpec, engine: Schedule, wins: Windows, tick: Tick, apply: _Applier
) -> BackfillProgress | None:
    if spec.backfill is None:
        return None
    launch, restart, progress = backfill_plan(
        wins.backfill,
        tick.known,
        tick.restarts or {},
        max_running=spec.backfill.max_running,
        max_restarts=engine.max_window_restarts,
    )
    for w in restart:
        apply.restart(w, wins.keys[w])
    for w in launch:
        apply.launch(w, wins.keys[w])
    return progress


@dataclass
class _Applier:
    """Turns the engine's actions into resource changes, one per window key."""

    spec: ScheduleSpec
    engine: Schedule
    kind: ParamType
    obs: Observed
    existing: dict[str, dict[str, Any]]
    out: Decision
    acted: set[str]

    def launch(self, window: dt.datetime, key: str) -> None:
        if key in self.acted or key in self.existing:
            return
        self.acted.add(key)
        self.out.create.append(execution_body(self.spec, self.obs, self.kind, window, key))

    def restart(self, window: dt.datetime, key: str) -> None:
        """The window's BatchExecution restarted as a user would (bump spec.restart);
        gone (history limits): created again, and its launch restarts the instance."""
        current = self.existing.get(key)
        if current is None:
            return self.launch(window, key)
        phase = (current.get("status") or {}).get("phase")
        if key in self.acted or phase not in RESTARTABLE or in_flight(current):
            return None
        self.acted.add(key)
        bump = int(current["spec"].get("restart", 0) or 0) + 1
        self.out.restart.append((current["metadata"]["name"], bump))
        return None

    def stop(self, key: str) -> None:
        current = self.existing.get(key)
        if current is None or key in self.acted or current["spec"].get("stop"):
            return
        self.acted.add(key)
        self.out.stop.append(current["metadata"]["name"])


def execution_name(schedule: str, kind: ParamType, window: dt.datetime, zone: Any) -> str:
    return f"{schedule}-{stamp(kind, window, zone)}"


def execution_body(
    spec: ScheduleSpec, obs: Observed, kind: ParamType, window: dt.datetime, key: str
) -> dict[str, Any]:
    """The window's BatchExecution: the schedule's parameters plus the window, its
    context and template; labelled and owned by the schedule (its own labels copied, so
    an operator that selects by label runs it)."""
    labels = {k: v for k, v in obs.labels.items() if not k.startswith("baton.dev/")}
    zone = spec.engine().zone()
    spec_out: dict[str, Any] = {
        "job": spec.job,
        "parameters": {**spec.parameters, spec.window_parameter: key},
    }
    if spec.context:
        spec_out["context"] = dict(spec.context)
    if spec.template is not None:
        spec_out["template"] = spec.template.dump()
    if spec.working_dir:
        spec_out["workingDir"] = spec.working_dir
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchExecution",
        "metadata": {
            "name": execution_name(obs.name, kind, window, zone),
            "namespace": obs.namespace,
            "labels": {**labels, LABEL_SCHEDULE: obs.name, LABEL_WINDOW: stamp(kind, window, zone)},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "BatchSchedule",
                    "name": obs.name,
                    "uid": obs.uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": spec_out,
    }


def history(spec: ScheduleSpec, executions: list[dict[str, Any]], acted: set[str]) -> list[str]:
    """The oldest finished BatchExecutions beyond the history limits (the repository
    keeps their records); never one this tick acts on."""
    done = [
        e for e in executions if not in_flight(e) and _param(e, spec.window_parameter) not in acted
    ]
    done.sort(key=lambda e: e["metadata"].get("creationTimestamp", ""), reverse=True)
    ok = [e for e in done if (e.get("status") or {}).get("phase") == Phase.COMPLETED.value]
    bad = [e for e in done if (e.get("status") or {}).get("phase") != Phase.COMPLETED.value]
    old = ok[spec.successful_executions_history_limit :]
    old += bad[spec.failed_executions_history_limit :]
    return [e["metadata"]["name"] for e in old]


def _status(
    spec: ScheduleSpec,
    engine: Schedule,
    obs: Observed,
    tick: Tick,
    since: dt.datetime,
    progress: BackfillProgress | None,
    out: Decision,
    now: dt.datetime,
) -> ScheduleStatus:
    created = [b["metadata"]["name"] for b in out.create]
    active = sorted({e["metadata"]["name"] for e in obs.executions if in_flight(e)} | {*created})
    done = [w for w, s in tick.known.items() if s is WindowStatus.COMPLETED]
    last_ok = max([*done, *_time(obs.status.last_successful_window)], default=None)
    status = ScheduleStatus(
        last_scheduled_window=iso(since),
        next_window=None if spec.suspend else iso(next_window(engine, now)),
        active=active or None,
        last_successful_window=iso(last_ok),
        conditions=obs.status.conditions,
    )
    if progress is not None and spec.backfill is not None:
        status.backfill = BackfillStatus.model_validate(
            {
                "from": spec.backfill.from_,
                "to": spec.backfill.to,
                "total": progress.total,
                "completed": progress.completed,
                "running": progress.running,
                "failed": progress.failed,
                "done": progress.done,
            }
        )
    return status


def _time(text: str | None) -> list[dt.datetime]:
    parsed = parse_time(text)
    return [] if parsed is None else [parsed]
