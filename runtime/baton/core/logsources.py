"""Which logs ``baton logs`` prints, in what order, under which prefix: pure functions
over the log sources of an execution, whether those are step pods in a cluster or the
files the local executor keeps per unit run.

A source is one run of one unit (a pod, a local process). Its ``attempt`` is its
1-based rank among the runs of the same unit (kind, step, partition), oldest first:
pod retries of a partition, new pods after a disruption or a time budget, and the runs
of earlier attempts of the execution all count, so ``--attempt 1`` is the unit's first
run and ``--attempt 2`` the run after it, whatever made it run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from baton.core.status import UnitKind


@dataclass(frozen=True)
class LogSource:
    """One run of a unit whose output can be read: ``ref`` names it (a pod, a file),
    ``order`` sorts it among the others (creation time, then name)."""

    kind: UnitKind
    step: str
    partition: int | None
    order: tuple[str, ...]
    ref: str
    attempt: int = 0

    @property
    def unit(self) -> tuple[UnitKind, str, int | None]:
        return (self.kind, self.step, self.partition)

    @property
    def prefix(self) -> str:
        """``load[3]`` for a partition, ``load`` for a plain step; a compensation or a
        callback says so: ``load[3]/compensation``, ``notify/callback``."""
        part = "" if self.partition is None else f"[{self.partition}]"
        kind = "" if self.kind is UnitKind.STEP else f"/{self.kind.value}"
        return f"{self.step}{part}{kind}"


def numbered(sources: Iterable[LogSource]) -> list[LogSource]:
    """The sources oldest first, each with its attempt (rank within its unit)."""
    seen: dict[tuple[UnitKind, str, int | None], int] = {}
    out = []
    for s in sorted(sources, key=lambda s: (s.order, s.ref)):
        seen[s.unit] = seen.get(s.unit, 0) + 1
        out.append(replace(s, attempt=seen[s.unit]))
    return out


def select(
    sources: Sequence[LogSource],
    step: str | None = None,
    partition: int | None = None,
    attempt: int | None = None,
) -> list[LogSource]:
    """The numbered sources that match ``--step``, ``--partition`` and ``--attempt``
    (each None: any)."""
    return [
        s
        for s in sources
        if (step is None or s.step == step)
        and (partition is None or s.partition == partition)
        and (attempt is None or s.attempt == attempt)
    ]


def prefixed(source: LogSource, line: str) -> str:
    """One output line: the source's prefix, a space, the line without its newline."""
    return f"{source.prefix} {line.rstrip(chr(10)).rstrip(chr(13))}"
