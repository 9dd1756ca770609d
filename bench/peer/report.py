"""The pure part of bench/peer: which statements touched a job repository, medians,
Baton/Spring ratios and the printed table. No I/O, so tests/bench checks it directly."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Table names of each side's job repository: Baton's baton_* tables (its Alembic
# version table too), Spring Batch's BATCH_* tables and sequences.
REPOSITORY_TABLES = {
    "baton": re.compile(r"\bbaton_[a-z_]+\b", re.IGNORECASE),
    "spring": re.compile(r"\bbatch_[a-z_]+\b", re.IGNORECASE),
}

TARGETS = {
    "copy": ("Baton default writer (COPY) / Spring Batch 6 throughput", ">= 1.5"),
    "insert": ("Baton INSERT / Spring Batch 6 (rewritten batches) throughput", ">= 1.0"),
    "upsert": ("Baton upsert / Spring Batch 6 (INSERT) throughput", "(no target)"),
}


def repository_statements(rows: Iterable[tuple[str, int]], family: str) -> int:
    """Calls of the statements (pg_stat_statements ``query``, ``calls``) that name one of
    ``family``'s repository tables; COPY into the target table, BEGIN/COMMIT and the
    bench's own queries name none."""
    pattern = REPOSITORY_TABLES[family]
    return sum(calls for query, calls in rows if pattern.search(query))


@dataclass
class Run:
    """One timed execution of one side."""

    side: str
    step_s: float
    wall_s: float
    chunks: int
    repo_statements: int
    cpu_s: float = float("nan")
    """User + system CPU of the launched process tree (the JVM; the CLI and its step
    process): steadier than wall time on a busy machine; the server's share is not in it."""

    @property
    def per_chunk(self) -> float:
        return self.repo_statements / self.chunks if self.chunks else float("nan")


@dataclass
class Restart:
    """One restart after a failure at 90 %: from the restart command's start to the
    first new chunk's last row, and to the command's end."""

    side: str
    first_chunk_s: float
    total_s: float
    step_s: float


@dataclass
class Results:
    rows: int
    runs: list[Run] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def side_order(sides: Sequence[str], round_no: int) -> list[str]:
    """ABBA generalised: forward in even rounds, backward in odd ones, so that drift of
    the machine hits every side alike."""
    return list(sides) if round_no % 2 == 0 else list(reversed(sides))


def throughput_ratio(baton: Sequence[Run], spring: Sequence[Run]) -> float:
    """Baton's throughput over Spring Batch's, from the median step times (same rows)."""
    return median([r.step_s for r in spring]) / median([r.step_s for r in baton])


def _fmt(v: float, unit: str = "") -> str:
    return "-" if v != v else f"{v:.2f}{unit}"  # NaN prints as "-"


def summary_rows(results: Results) -> list[list[str]]:
    """One row per side: medians of step, wall, rows/s, statements per chunk, restart."""
    out = []
    for side in dict.fromkeys(r.side for r in results.runs):
        runs = [r for r in results.runs if r.side == side]
        restarts = [r for r in results.restarts if r.side == side]
        step = median([r.step_s for r in runs])
        out.append(
            [
                side,
                _fmt(step, " s"),
                _fmt(median([r.wall_s for r in runs]), " s"),
                _fmt(median([r.cpu_s for r in runs]), " s"),
                f"{results.rows / step:,.0f}" if step == step and step > 0 else "-",
                _fmt(median([r.per_chunk for r in runs])),
                _fmt(median([r.first_chunk_s for r in restarts]), " s"),
                _fmt(median([r.total_s for r in restarts]), " s"),
            ]
        )
    return out


HEADER = [
    "side",
    "step",
    "wall",
    "client CPU",
    "rows/s (step)",
    "repo stmts/chunk",
    "restart: 1st chunk",
    "restart: total",
]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain Markdown table (it pastes into the README as it is)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def ratio_lines(results: Results, spring: str = "spring") -> list[str]:
    """Baton/Spring ratios next to the issue's targets."""
    by_side: Mapping[str, list[Run]] = {
        s: [r for r in results.runs if r.side == s] for s in {r.side for r in results.runs}
    }
    lines = []
    base = by_side.get(spring, [])
    for side in sorted(by_side):
        mode = side.removeprefix("baton-")
        if side == spring or not base or mode not in TARGETS:
            continue
        what, target = TARGETS[mode]
        step = throughput_ratio(by_side[side], base)
        wall = median([r.wall_s for r in base]) / median([r.wall_s for r in by_side[side]])
        cpu = median([r.cpu_s for r in base]) / median([r.cpu_s for r in by_side[side]])
        lines.append(
            f"{what}: {step:.2f}x (wall {wall:.2f}x, client CPU {cpu:.2f}x)   target {target}"
        )
    firsts = {
        s: median([r.first_chunk_s for r in results.restarts if r.side == s])
        for s in {r.side for r in results.restarts}
    }
    for side, first in sorted(firsts.items()):
        if side != spring and spring in firsts:
            lines.append(
                f"restart's first new chunk, {side} / Spring Batch 6 (time): "
                f"{first / firsts[spring]:.2f}   target <= 1.00"
            )
    for side, runs in sorted(by_side.items()):
        target = "~3" if side == spring else "1"
        lines.append(
            f"repository statements per chunk, {side}: {median([r.per_chunk for r in runs]):.2f}"
            f"   target {target}"
        )
    return lines
