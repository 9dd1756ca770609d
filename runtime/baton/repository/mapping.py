"""Rows to records and values to columns: what the repository's roles share.

Records come back UTC-aware with decoded contexts; what goes into a column is made
storable on both backends first (no NUL, no lone surrogate, no NaN in ``json``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Row

from baton.core.codec import decode_context
from baton.core.entities import JobExecution, StepExecution
from baton.core.errors import NoSuchExecution
from baton.core.parameters import JobParameter, JobParameters
from baton.core.status import BatchStatus
from baton.repository.schema import NO_PARTITION, JobExecutionRow, StepExecutionRow

MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist (and would not even bind)
MAX_DEPTH = 100
MAX_TEXT = 20000  # exit descriptions and skip errors are cut to this


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc(value: Any) -> Any:
    """SQLite hands back naive datetimes; everything Baton shows is UTC-aware."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def check_id(execution_id: int, what: str = "job execution") -> None:
    """An id no row can have (negative, zero, past BIGINT) is simply not found."""
    if not isinstance(execution_id, int) or not 0 < execution_id <= MAX_ID:
        raise NoSuchExecution(f"no {what} with id {execution_id}")


def storable_text(value: str) -> str:
    """Text both backends store: PostgreSQL refuses NUL, neither takes a lone surrogate."""
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def jsonable(value: Any) -> Any:
    """Items, results and partition args as JSON both backends accept: as they are when
    they can be; else containers converted element by element, dates as ISO text,
    Decimal/UUID as text, NaN/infinity and anything else as its repr (never a value
    PostgreSQL's ``json`` refuses, never a cycle)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError, RecursionError):
        return _jsonable(value, set(), 0)


def _jsonable(value: Any, seen: set[int], depth: int) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    key = id(value)
    if key in seen or depth >= MAX_DEPTH:
        return "<cycle>" if key in seen else repr(value)[:1000]
    seen.add(key)
    try:
        if hasattr(value, "_asdict"):
            value = value._asdict()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        elif hasattr(value, "__dict__") and not isinstance(value, type) and not callable(value):
            value = vars(value)
        if isinstance(value, Mapping):
            return {str(k): _jsonable(v, seen, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_jsonable(v, seen, depth + 1) for v in value]
        return repr(value)
    finally:
        seen.discard(key)


def partition_of(p: int) -> int | None:
    return None if p == NO_PARTITION else p


def execution_of(
    r: JobExecutionRow | Row[Any], job_name: str, params: Sequence[JobParameter]
) -> JobExecution:
    return JobExecution(
        id=r.id,
        instance_id=r.instance_id,
        job_name=job_name,
        version=r.version,
        attempt=r.attempt,
        status=BatchStatus(r.status),
        exit_code=r.exit_code,
        exit_description=r.exit_description,
        created_at=utc(r.created_at),
        start_time=utc(r.start_time),
        end_time=utc(r.end_time),
        last_updated=utc(r.last_updated),
        owner=r.owner,
        source_dir=r.source_dir,
        job_spec=r.job_spec,
        context=decode_context(r.context),
        parameters=JobParameters(tuple(params)),
    )


def step_of(r: StepExecutionRow | Row[Any]) -> StepExecution:
    return StepExecution(
        id=r.id,
        execution_id=r.execution_id,
        step_name=r.step_name,
        partition=partition_of(r.partition),
        version=r.version,
        status=BatchStatus(r.status),
        read_count=r.read_count,
        write_count=r.write_count,
        filter_count=r.filter_count,
        read_skip_count=r.read_skip_count,
        process_skip_count=r.process_skip_count,
        write_skip_count=r.write_skip_count,
        commit_count=r.commit_count,
        rollback_count=r.rollback_count,
        total_count=r.total_count,
        start_time=utc(r.start_time),
        end_time=utc(r.end_time),
        last_updated=utc(r.last_updated),
        exit_code=r.exit_code,
        exit_description=r.exit_description,
        context=decode_context(r.context),
        result=r.result,
        worker=r.worker,
        peak_memory_kb=r.peak_memory_kb,
        incarnations=r.incarnations,
        kind=r.kind,
    )
