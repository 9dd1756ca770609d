"""Which job instances ``baton purge`` may delete, and in which batches: pure rules.

An instance is the unit of purging (its executions, steps, contexts, skips, results and
partitions go with it), because the restart rules read an instance's history: deleting
part of it could make a finished instance look restartable. So an instance is kept when
it still runs, when it can still restart (last execution FAILED, STOPPED or UNKNOWN)
unless asked, when it is among the newest ``keep_last`` of its job, or when anything
happened to it after the cutoff.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from baton.core.status import RUNNING, BatchStatus

# A last execution in one of these can still be restarted (UNKNOWN once recovered).
RESTARTABLE = frozenset({BatchStatus.FAILED, BatchStatus.STOPPED, BatchStatus.UNKNOWN})

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> dt.timedelta:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or a sum like ``1d12h``; ValueError
    for anything else (a bare number has no unit and is refused: days or seconds?)."""
    raw = text.strip().lower()
    parts = _DURATION.findall(raw)
    if not raw or "".join(n + u for n, u in parts) != raw:
        raise ValueError(f"{text!r} is not a duration: expected e.g. 90d, 12h, 30m, 45s or 1d12h")
    return dt.timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


class Kept(StrEnum):
    """Why an instance is not purged."""

    RUNNING = "running"
    RESTARTABLE = "restartable"
    KEEP_LAST = "keepLast"
    RECENT = "recent"


@dataclass(frozen=True)
class Candidate:
    """What the repository says about one instance, as much as the rules read."""

    id: int
    namespace: str
    job: str
    last_status: BatchStatus | None  # of its newest execution; None: no execution
    last_activity: dt.datetime  # latest end (or update) of any execution, else creation
    running: bool = False  # any execution in a running status
    rows: int = 0  # its step executions and skipped items: the weight of deleting it


@dataclass(frozen=True)
class PurgeRule:
    """What ``baton purge`` was asked: instances whose last activity is before
    ``cutoff``; ``keep_from[(namespace, job)]``: the id of the ``keep_last``-th newest
    instance of that job (it and newer ones are kept; a job missing from the map had at
    most ``keep_last`` instances when counted, so all of them are kept)."""

    cutoff: dt.datetime
    include_restartable: bool = False
    keep_last: int = 0
    keep_from: Mapping[tuple[str, str], int] = field(default_factory=dict)


def verdict(c: Candidate, rule: PurgeRule) -> Kept | None:
    """Why ``c`` is kept, or None: it may be purged. A running instance is never purged."""
    if c.running or (c.last_status is not None and c.last_status in RUNNING):
        return Kept.RUNNING
    if rule.keep_last and c.id >= rule.keep_from.get((c.namespace, c.job), 0):
        return Kept.KEEP_LAST
    if c.last_activity >= rule.cutoff:
        return Kept.RECENT
    if c.last_status in RESTARTABLE and not rule.include_restartable:
        return Kept.RESTARTABLE
    return None


def batches(found: Iterable[Candidate], max_instances: int, max_rows: int) -> list[list[Candidate]]:
    """``found`` in order, cut into batches of at most ``max_instances`` instances and
    ``max_rows`` rows (an instance heavier than that alone is a batch of its own: an
    instance is deleted whole, in one transaction)."""
    out: list[list[Candidate]] = []
    current: list[Candidate] = []
    weight = 0
    for c in found:
        if current and (len(current) >= max_instances or weight + c.rows > max_rows):
            out.append(current)
            current, weight = [], 0
        current.append(c)
        weight += c.rows
    if current:
        out.append(current)
    return out
