"""The JSON view of an execution and its steps: what ``JobExplorer.summary`` returns
and ``baton show``/``run``/``steps`` print. The keys are a public contract."""

from __future__ import annotations

import datetime as dt
from typing import Any

from baton.core.entities import JobExecution, StepExecution
from baton.repository.mapping import jsonable


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def step_view(s: StepExecution) -> dict[str, Any]:
    """Every field of a step execution (``baton steps``, and each step of ``show``)."""
    return {
        "id": s.id,
        "name": s.step_name,
        "partition": s.partition,
        "status": s.status.value,
        "readCount": s.read_count,
        "writeCount": s.write_count,
        "filterCount": s.filter_count,
        "skipCount": s.skip_count,
        "readSkipCount": s.read_skip_count,
        "processSkipCount": s.process_skip_count,
        "writeSkipCount": s.write_skip_count,
        "commitCount": s.commit_count,
        "rollbackCount": s.rollback_count,
        "totalCount": s.total_count,
        "exitCode": s.exit_code,
        "exitDescription": s.exit_description,
        "startTime": iso(s.start_time),
        "endTime": iso(s.end_time),
        "worker": s.worker,
        "peakMemoryKb": s.peak_memory_kb,
        "incarnations": s.incarnations,
        "result": s.result,
    }


def execution_view(e: JobExecution, steps: list[StepExecution] | None) -> dict[str, Any]:
    """A job execution with its steps (``show``, ``run``, ``restart``); ``steps`` None
    where the command does not read them (``stop``, ``abandon``, ``recover``)."""
    return {
        "id": e.id,
        "instanceId": e.instance_id,
        "job": e.job_name,
        "status": e.status.value,
        "exitCode": e.exit_code,
        "exitDescription": e.exit_description,
        "attempt": e.attempt,
        "parameters": e.parameters.as_json(),
        "identifyingParameters": [p.name for p in e.parameters.items if p.identifying],
        "createTime": iso(e.created_at),
        "startTime": iso(e.start_time),
        "endTime": iso(e.end_time),
        "context": jsonable(e.context),  # datetime, Decimal, UUID as text
        "steps": None if steps is None else [step_view(s) for s in steps],
    }
