"""A window as the job sees it, and what the repository says of it. Pure.

The window parameter is an identifying ``date`` or ``datetime`` parameter of the job: a
``date`` parameter receives the window's date in the schedule's zone, a ``datetime`` one
the aware instant (in that zone). Its canonical text (what the repository stores and
hashes into the instance key) is therefore the window's key: the local scheduler and
the operator ask the repository for the instances whose window parameter has one of a
tick's keys, in one query, and the same key names the window's BatchExecution."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from baton.core.errors import InvalidDefinition, InvalidParameters
from baton.core.parameters import ParamType, to_text
from baton.core.status import BatchStatus
from baton.schedule.windows import Schedule, Tick, WindowStatus, lookback, windows
from baton.spec.model import JobSpec

WINDOW_TYPES = (ParamType.DATE, ParamType.DATETIME)
MAX_BACKFILL = 1000  # windows one backfill may cover


@dataclass(frozen=True)
class WindowRecord:
    """The repository's word on a window: its instance's last execution and how many
    executions the instance has had (the restarts made are one fewer)."""

    status: BatchStatus
    executions: int
    execution_id: int


def window_kind(job: JobSpec, name: str) -> ParamType:
    """The type of the job's window parameter; refused unless it is a declared,
    identifying ``date`` or ``datetime`` parameter (else windows would share instances)."""
    declared = next((p for p in job.parameters if p.name == name), None)
    if declared is None:
        raise InvalidDefinition(f"windowParameter '{name}' is not a parameter of the job")
    if not declared.identifying or declared.type not in WINDOW_TYPES:
        raise InvalidDefinition(
            f"windowParameter '{name}' must be an identifying date or datetime parameter "
            f"(it is {'an identifying' if declared.identifying else 'a non-identifying'} "
            f"{declared.type.value} parameter)"
        )
    return declared.type


def window_value(kind: ParamType, window: dt.datetime, zone: ZoneInfo) -> Any:
    local = window.astimezone(zone)
    return local.date() if kind is ParamType.DATE else local


def window_key(kind: ParamType, window: dt.datetime, zone: ZoneInfo) -> str:
    """The parameter's canonical text for this window: the window's identity."""
    return to_text(kind, window_value(kind, window, zone))


def stamp(kind: ParamType, window: dt.datetime, zone: ZoneInfo) -> str:
    """The window in a resource name: the local date (``20260101``) for a date
    parameter, the UTC minute (``202601010200``, never ambiguous across DST) else."""
    if kind is ParamType.DATE:
        return window.astimezone(zone).strftime("%Y%m%d")
    return window.astimezone(dt.UTC).strftime("%Y%m%d%H%M")


def window_status(status: BatchStatus) -> WindowStatus:
    if status is BatchStatus.COMPLETED:
        return WindowStatus.COMPLETED
    if status in (BatchStatus.FAILED, BatchStatus.STOPPED):
        return WindowStatus.FAILED
    if status.running or status is BatchStatus.UNKNOWN:
        return WindowStatus.RUNNING  # UNKNOWN: until recovery marks it FAILED
    return WindowStatus.ENDED


def candidates(schedule: Schedule, since: dt.datetime, now: dt.datetime) -> list[dt.datetime]:
    """The windows a tick may act on: the due ones after ``since`` and the recent ones
    whose FAILED instance may be restarted (within :func:`lookback`)."""
    return windows(schedule, min(since, now - lookback(schedule)), now)


def tick_of(
    since: dt.datetime,
    now: dt.datetime,
    keys: Mapping[dt.datetime, str],
    records: Mapping[str, WindowRecord],
    overrides: Mapping[str, WindowStatus] | None = None,
) -> Tick:
    """The engine's view of the windows (``keys``: window → key); ``overrides`` (the
    operator's) say a key is RUNNING whatever the repository says (a BatchExecution
    created or restarted that the operator has not launched yet)."""
    known: dict[dt.datetime, WindowStatus] = {}
    restarts: dict[dt.datetime, int] = {}
    for w, key in keys.items():
        record = records.get(key)
        if record is not None:
            known[w] = window_status(record.status)
            restarts[w] = record.executions - 1
        if overrides and key in overrides:
            known[w] = overrides[key]
    return Tick(now=now, since=since, known=known, restarts=restarts)


def newest_known(tick: Tick) -> dt.datetime | None:
    return max(tick.known, default=None)


def parse_window_time(text: str, zone: ZoneInfo, what: str) -> dt.datetime:
    """``--from``/``--to`` and spec.backfill: ISO 8601, a date or a time without offset
    read in the schedule's zone; aware UTC out."""
    raw = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameters(
            f"{what} {raw!r} is not an ISO 8601 date or time (e.g. 2026-01-01 or 2026-01-01T02:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(dt.UTC)


def backfill_windows(schedule: Schedule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The windows in ``[start, end]``, oldest first; refused when ``start`` is after
    ``end`` or they are more than :data:`MAX_BACKFILL`."""
    if start > end:
        raise InvalidParameters(f"backfill: from {start.isoformat()} is after to {end.isoformat()}")
    found = windows(schedule, start - dt.timedelta(microseconds=1), end, limit=MAX_BACKFILL + 1)
    if len(found) > MAX_BACKFILL:
        raise InvalidParameters(
            f"backfill: more than {MAX_BACKFILL} windows between {start.isoformat()} and "
            f"{end.isoformat()}; split it"
        )
    return found


@dataclass(frozen=True)
class BackfillProgress:
    total: int
    completed: int
    running: int
    failed: int  # FAILED (or ENDED) with no restart left: the backfill gives up on them

    @property
    def done(self) -> bool:
        return self.completed + self.failed == self.total


def backfill_plan(
    found: Iterable[dt.datetime],
    known: Mapping[dt.datetime, WindowStatus],
    restarts: Mapping[dt.datetime, int],
    *,
    max_running: int,
    max_restarts: int,
) -> tuple[list[dt.datetime], list[dt.datetime], BackfillProgress]:
    """(windows to launch, windows to restart, progress): oldest first, COMPLETED ones
    skipped, a FAILED one restarted (within the restart budget) rather than launched
    anew, never more than ``max_running`` of the backfill's windows running at once."""
    launch: list[dt.datetime] = []
    restart: list[dt.datetime] = []
    ordered = sorted(found)
    running = sum(1 for w in ordered if known.get(w) is WindowStatus.RUNNING)
    completed = failed = 0
    for w in ordered:
        state = known.get(w)
        if state is WindowStatus.COMPLETED:
            completed += 1
        elif state is WindowStatus.ENDED or (
            state is WindowStatus.FAILED and restarts.get(w, 0) >= max_restarts
        ):
            failed += 1
        elif (state is None or state is WindowStatus.FAILED) and running < max_running:
            (launch if state is None else restart).append(w)
            running += 1
    progress = BackfillProgress(len(ordered), completed, running, failed)
    return launch, restart, progress
