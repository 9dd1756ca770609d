"""When a schedule's windows fall and what a tick does about them. Pure: the clock, the
repository and the cluster belong to the caller.

A window is the scheduled time of one run, bound to an identifying parameter, so the
restart rules make every window exactly one job instance. A window that COMPLETED is
therefore never run again, whatever the clock or the number of operators does; this
module only decides which windows are due, oldest first, under the concurrency policy
and the starting deadline (the anchors: CronJob's ``startingDeadlineSeconds`` and
``concurrencyPolicy``, Argo CronWorkflow, Temporal's catch-up window)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from baton.core.errors import InvalidDefinition

UTC = dt.UTC
RESTART_HORIZON_SECONDS = 86400  # without a starting deadline: how far back FAILED windows restart


class Concurrency(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class WindowStatus(StrEnum):
    """What the repository says of a window's instance."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # FAILED or STOPPED: restartable
    ENDED = "ENDED"  # ABANDONED or COMPENSATED: never runs again, never restarted


@dataclass(frozen=True)
class Schedule:
    crons: tuple[str, ...]
    time_zone: str = "UTC"
    starting_deadline_seconds: int | None = None
    concurrency: Concurrency = Concurrency.ALLOW
    suspend: bool = False
    restart_failed_windows: bool = True
    max_window_restarts: int = 3
    max_catch_up: int = 100  # windows looked at per tick (CronJob stops at 100 too)

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.time_zone)
        except (KeyError, ValueError):
            raise InvalidDefinition(f"timeZone '{self.time_zone}' is not an IANA zone") from None


def check(schedule: Schedule) -> None:
    """Refuse what cannot fire: no expression, a bad one, an unknown zone."""
    if not schedule.crons:
        raise InvalidDefinition("schedule: at least one cron expression")
    schedule.zone()
    for expr in schedule.crons:
        try:
            CronSim(expr, dt.datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as e:
            raise InvalidDefinition(f"schedule '{expr}': {e}") from None


def windows(
    schedule: Schedule, after: dt.datetime, until: dt.datetime, limit: int | None = None
) -> list[dt.datetime]:
    """Window times in ``(after, until]``, oldest first, as aware UTC datetimes; at most
    ``limit`` (default ``max_catch_up``) of them, the newest kept. Expressions fire in
    the schedule's zone (a time skipped by a DST change fires at the first time after
    it, a repeated one once); two expressions firing at the same instant make one window."""
    zone = schedule.zone()
    found: set[dt.datetime] = set()
    for expr in schedule.crons:
        for t in CronSim(expr, after.astimezone(zone)):
            utc = t.astimezone(UTC)
            if utc > until:
                break
            found.add(utc)
    return sorted(found)[-(limit or schedule.max_catch_up) :]


def next_window(schedule: Schedule, after: dt.datetime) -> dt.datetime:
    """The first window after ``after`` (what status.nextWindow shows)."""
    zone = schedule.zone()
    return min(next(iter(CronSim(e, after.astimezone(zone)))) for e in schedule.crons).astimezone(
        UTC
    )


def lookback(schedule: Schedule) -> dt.timedelta:
    """How far back a tick looks for FAILED windows to restart: the starting deadline,
    else :data:`RESTART_HORIZON_SECONDS`."""
    seconds = schedule.starting_deadline_seconds
    return dt.timedelta(seconds=RESTART_HORIZON_SECONDS if seconds is None else seconds)


@dataclass(frozen=True)
class Launch:
    window: dt.datetime


@dataclass(frozen=True)
class Restart:
    window: dt.datetime


@dataclass(frozen=True)
class Stop:
    """Replace: stop the running window at a chunk boundary before the new one."""

    window: dt.datetime


@dataclass(frozen=True)
class Missed:
    """Past the starting deadline: never run (reported, like CronJob's event)."""

    window: dt.datetime


Action = Launch | Restart | Stop | Missed


@dataclass(frozen=True)
class Tick:
    now: dt.datetime
    since: dt.datetime  # the newest window already handled, or the schedule's creation
    known: Mapping[dt.datetime, WindowStatus]  # windows that have an instance (or a
    # launch on its way: the operator counts a BatchExecution not yet launched as RUNNING)
    restarts: Mapping[dt.datetime, int] | None = None  # restarts made per window


@dataclass(frozen=True)
class Plan:
    actions: list[Action]
    since: dt.datetime  # the new ``since``: windows up to it were handled


def _late(schedule: Schedule, now: dt.datetime, window: dt.datetime) -> bool:
    deadline = schedule.starting_deadline_seconds
    return deadline is not None and (now - window).total_seconds() > deadline


def _failed_to_restart(schedule: Schedule, tick: Tick) -> list[dt.datetime]:
    if not schedule.restart_failed_windows:
        return []
    restarts = tick.restarts or {}
    return sorted(
        w
        for w, s in tick.known.items()
        if s is WindowStatus.FAILED
        and restarts.get(w, 0) < schedule.max_window_restarts
        and not _late(schedule, tick.now, w)
    )


def plan(schedule: Schedule, tick: Tick) -> Plan:
    """What this tick does. Due windows oldest first: a COMPLETED or RUNNING one is left
    alone, a FAILED one restarted (within the deadline and the restart budget), a new
    one launched; past the deadline: Missed. Forbid waits while one runs (``since`` does
    not move past the waiting window); Replace launches only the newest due window and
    stops the running ones first."""
    if tick.now < tick.since or schedule.suspend:
        return Plan([], tick.since)  # the clock went back, or suspended: nothing new
    running = sorted(w for w, s in tick.known.items() if s is WindowStatus.RUNNING)
    actions: list[Action] = [Restart(w) for w in _failed_to_restart(schedule, tick)]
    running += [a.window for a in actions]
    due = windows(schedule, tick.since, tick.now)
    since = tick.since
    if schedule.concurrency is Concurrency.REPLACE and due:
        actions += [Missed(w) for w in due[:-1] if w not in tick.known]
        due = due[-1:]
    for w in due:
        if _late(schedule, tick.now, w):
            actions.append(Missed(w))
        elif tick.known.get(w) is None:
            if running and schedule.concurrency is Concurrency.FORBID:
                break  # wait for the running one; this window stays due
            if schedule.concurrency is Concurrency.REPLACE:
                actions += [Stop(r) for r in running]
                running = []
            actions.append(Launch(w))
            running.append(w)
        since = w
    return Plan(actions, since)
