"""How far an execution is: each step's status with its partitions summed up, and the
overall progress, from the repository's unit rows (and what earlier attempts did)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from baton.core.entities import StepExecution
from baton.core.status import BatchStatus, UnitKind
from baton.flow.state import CONTINUE
from baton.spec.model import BatchJob

from baton_operator.k8s.resources import StepStatus, iso

Previous = Mapping[tuple[str, int | None], BatchStatus]

# Which status a step shows when its units ended differently (the first one present).
_ENDS = (
    BatchStatus.FAILED,
    BatchStatus.STOPPED,
    BatchStatus.ABANDONED,
    BatchStatus.UNKNOWN,
    BatchStatus.COMPLETED,
)


def continuing(r: StepExecution) -> bool:
    """Ended its pod but not its work: a new pod continues it (exit 9: a time budget
    used up, or a pod deleted/evicted while the job was not STOPPING)."""
    return r.status is BatchStatus.STOPPED and r.exit_code == CONTINUE


def _fraction(r: StepExecution) -> float | None:
    """How far one unit is: 1 when COMPLETED, read/total when its total is known."""
    if r.status is BatchStatus.COMPLETED:
        return 1.0
    if r.total_count:
        return min((r.read_count + r.read_skip_count) / r.total_count, 0.99)
    return None


def _status_of(rows: Sequence[StepExecution]) -> BatchStatus:
    """A step's status from its units': running while any runs (or continues)."""
    statuses = {BatchStatus.STARTED if continuing(r) else r.status for r in rows}
    if any(s.running for s in statuses):
        return BatchStatus.STARTED
    if statuses == {BatchStatus.COMPLETED}:
        return BatchStatus.COMPLETED
    return next(s for s in _ENDS if s in statuses)


def _step_status(
    name: str, rows: Sequence[StepExecution], status: BatchStatus, units: int, done: int
) -> StepStatus:
    partitioned = any(r.partition is not None for r in rows)
    total = sum(r.total_count or 0 for r in rows) if all(r.total_count for r in rows) else None
    starts = [r.start_time for r in rows if r.start_time]
    ends = [r.end_time for r in rows if r.end_time]
    failed = [
        r
        for r in rows
        if r.status in (BatchStatus.FAILED, BatchStatus.STOPPED) and not continuing(r)
    ]
    return StepStatus(
        name=name,
        status=status.value,
        partitions_total=units if partitioned else None,
        partitions_done=done if partitioned else None,
        read_count=sum(r.read_count for r in rows),
        write_count=sum(r.write_count for r in rows),
        filter_count=sum(r.filter_count for r in rows),
        skip_count=sum(r.skip_count for r in rows),
        commit_count=sum(r.commit_count for r in rows),
        rollback_count=sum(r.rollback_count for r in rows),
        total_count=total,
        start_time=iso(min(starts)) if starts else None,
        end_time=iso(max(ends)) if ends and not status.running else None,
        exit_description=(failed[0].exit_description.split("\n", 1)[0][:500] if failed else None),
    )


def _one_step(
    name: str,
    rows: Sequence[StepExecution],
    planned: int,
    earlier: set[tuple[str, int | None]],
) -> tuple[StepStatus, float]:
    """A step that ran in this attempt: its status and how far it is."""
    partitioned = any(r.partition is not None for r in rows)
    status = _status_of(rows)
    units = max(len(rows), planned) if partitioned else 1
    ran = {r.partition for r in rows}
    done_before = sum(1 for (n, p) in earlier if n == name and p is not None and p not in ran)
    done = sum(1 for r in rows if r.status is BatchStatus.COMPLETED) + done_before
    if status is BatchStatus.COMPLETED:
        fraction = 1.0
    else:
        known = [f for f in map(_fraction, rows) if f is not None]
        fraction = min((sum(known) + done_before) / units, 0.99)
    return _step_status(name, rows, status, units, done), fraction


def step_statuses(
    job: BatchJob,
    steps: Sequence[StepExecution],
    partitions: Mapping[str, int] | None = None,
    previous: Previous | None = None,
) -> tuple[list[StepStatus], float | None]:
    """Per-step status (partitions summed up) and the overall progress in [0, 1].

    A step's progress is the mean over its units (every planned partition, started or
    not) of how far each is; a unit whose total is unknown counts 0 until it completes,
    and one COMPLETED by an earlier attempt (not run again) counts done."""
    earlier = {k for k, v in (previous or {}).items() if v is BatchStatus.COMPLETED}
    by_step: dict[str, list[StepExecution]] = {}
    for s in steps:
        if s.kind == UnitKind.STEP:
            by_step.setdefault(s.step_name, []).append(s)
    out: list[StepStatus] = []
    fractions: list[float] = []
    members = [m for entry in job.spec.steps for m in entry.members]
    for spec in members:
        rows = by_step.get(spec.name, [])
        if not rows:
            fractions.append(1.0 if (spec.name, None) in earlier else 0.0)
            continue
        status, fraction = _one_step(spec.name, rows, (partitions or {}).get(spec.name, 0), earlier)
        out.append(status)
        fractions.append(fraction)
    progress = sum(fractions) / len(fractions) if fractions else None
    return out, progress
