"""The JSON view of each record the CLI prints, one function per record and listing.

``--json`` prints these dicts and the tables (:mod:`baton.cli.tables`) read the same
keys, so the two cannot disagree. The keys are a public contract: never rename one.
Listings keep their own (smaller) row shapes, which are as public as the full views.
"""

from __future__ import annotations

from typing import Any

from baton.core.entities import JobExecution, JobInstance, SkippedItem, StepExecution
from baton.explore.views import iso as _iso


def execution_row(e: JobExecution, process_gone: bool | None) -> dict[str, Any]:
    """A job execution in ``baton executions``: the first line of its exit description."""
    return {
        "id": e.id,
        "instanceId": e.instance_id,
        "job": e.job_name,
        "status": e.status.value,
        "attempt": e.attempt,
        "exitCode": e.exit_code,
        "exitDescription": e.exit_description.split("\n", 1)[0],
        "parameters": e.parameters.as_json(),
        "startTime": _iso(e.start_time),
        "endTime": _iso(e.end_time),
        "processGone": process_gone,
    }


def instance_row(i: JobInstance, last: JobExecution | None) -> dict[str, Any]:
    """A job instance in ``baton instances``, with its last execution's parameters."""
    return {
        "id": i.id,
        "job": i.job_name,
        "key": i.job_key,
        "createTime": i.created_at.isoformat(),
        "parameters": last.parameters.as_json() if last is not None else {},
        "lastExecutionId": last.id if last is not None else None,
        "lastStatus": last.status.value if last is not None else None,
    }


def skip_row(s: SkippedItem) -> dict[str, Any]:
    """A skipped item in ``baton skips``, with the error that made it skip."""
    return {
        "id": s.id,
        "step": s.step_name,
        "partition": s.partition,
        "phase": s.phase,
        "item": s.item,
        "error": s.error,
    }


def result_row(s: StepExecution) -> dict[str, Any]:
    """What a step (or partition) returned, in ``baton results``."""
    return {
        "step": s.step_name,
        "partition": s.partition,
        "status": s.status.value,
        "result": s.result,
    }


def history_row(e: JobExecution, s: StepExecution) -> dict[str, Any]:
    """Where and how long a unit ran, in ``baton history``."""
    return {
        "execution": e.id,
        "step": s.step_name,
        "partition": s.partition,
        "kind": s.kind,
        "status": s.status.value,
        "worker": s.worker,
        "startTime": s.start_time.isoformat(),
        "endTime": _iso(s.end_time),
        "durationSeconds": round((s.end_time - s.start_time).total_seconds(), 3)
        if s.end_time
        else None,
        "peakMemoryKb": s.peak_memory_kb,
        "incarnations": s.incarnations,
    }
