"""Plain, immutable views of repository rows: what queries return and callers keep.

They are detached from the ORM on purpose: a record can be cached, serialized and
passed to pure functions without dragging a session along.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from baton.core.parameters import JobParameters
from baton.core.status import BatchStatus


@dataclass(frozen=True)
class JobInstance:
    id: int
    job_name: str
    job_key: str
    created_at: dt.datetime


@dataclass(frozen=True)
class JobExecution:
    id: int
    instance_id: int
    job_name: str
    version: int
    attempt: int
    status: BatchStatus
    exit_code: str
    exit_description: str
    created_at: dt.datetime
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    last_updated: dt.datetime
    owner: str | None
    source_dir: str | None
    job_spec: dict[str, Any]
    context: dict[str, Any]
    parameters: JobParameters = field(default_factory=JobParameters)


@dataclass(frozen=True)
class StepExecution:
    id: int
    execution_id: int
    step_name: str
    partition: int | None
    version: int
    status: BatchStatus
    read_count: int
    write_count: int
    filter_count: int
    read_skip_count: int
    process_skip_count: int
    write_skip_count: int
    commit_count: int
    rollback_count: int
    total_count: int | None
    start_time: dt.datetime
    end_time: dt.datetime | None
    last_updated: dt.datetime
    exit_code: str
    exit_description: str
    context: dict[str, Any]
    result: Any
    worker: str | None
    peak_memory_kb: int | None
    incarnations: int
    kind: str = "step"

    @property
    def skip_count(self) -> int:
        return self.read_skip_count + self.process_skip_count + self.write_skip_count


@dataclass(frozen=True)
class SkippedItem:
    id: int
    step_execution_id: int
    step_name: str
    partition: int | None
    phase: str
    item: Any
    error: str
    created_at: dt.datetime
