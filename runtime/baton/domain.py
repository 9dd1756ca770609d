"""Statuses, exit codes, typed parameters and the restart rules: pure, no I/O.

Vocabulary follows Spring Batch: a JobInstance is (job name, key of the identifying
parameters); a JobExecution is one attempt at it; a StepExecution one step (or one
partition) within an execution.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any


class BatchStatus(StrEnum):
    STARTING = "STARTING"
    STARTED = "STARTED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    COMPLETED = "COMPLETED"
    ABANDONED = "ABANDONED"
    UNKNOWN = "UNKNOWN"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"

    @property
    def running(self) -> bool:
        return self in RUNNING

    @property
    def terminal(self) -> bool:
        return self not in RUNNING and self is not BatchStatus.UNKNOWN


RUNNING = frozenset(
    {BatchStatus.STARTING, BatchStatus.STARTED, BatchStatus.STOPPING, BatchStatus.COMPENSATING}
)


class ExitCode(IntEnum):
    """Process exit codes: the contract of `baton run`, `baton step` and (later) pods."""

    COMPLETED = 0
    FAILED = 1  # the job (or a step, retryably) failed
    USAGE = 2  # command-line usage error (click's own code)
    STOPPED = 3  # stopped on request; never retried
    REJECTED = 4  # a restart rule refused the launch
    INVALID = 5  # bad manifest, unknown job, bad parameter, import error
    DATABASE = 6  # the job repository is unreachable
    WRONG_STATE = 7  # stop/abandon/restart of an execution in the wrong state
    FATAL = 8  # a step failed in a way a retry cannot fix (pods: fail the index)
    CONTINUE = 9  # time budget used up; the next incarnation continues

    @classmethod
    def for_status(cls, status: BatchStatus) -> ExitCode:
        return {
            BatchStatus.COMPLETED: cls.COMPLETED,
            BatchStatus.STOPPED: cls.STOPPED,
        }.get(status, cls.FAILED)


# ---------------------------------------------------------------- parameters


class ParamType(StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def parse_value(kind: ParamType, raw: Any) -> Any:
    """Turn a raw value (string from the CLI, or YAML scalar) into the typed value.

    Raises ValueError with a message that names the expected form.
    """
    if kind is ParamType.STRING:
        if isinstance(raw, (dict, list)):
            raise ValueError("expected a string")
        return str(raw)
    if kind is ParamType.INT:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if kind is ParamType.FLOAT:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {raw!r}") from None
    if kind is ParamType.BOOL:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if kind is ParamType.DATE:
        if isinstance(raw, dt.datetime):
            raise ValueError(f"expected a date (YYYY-MM-DD), got {raw!r}")
        if isinstance(raw, dt.date):
            return raw
        try:
            return dt.date.fromisoformat(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a date (YYYY-MM-DD), got {raw!r}") from None
    if kind is ParamType.DATETIME:
        if isinstance(raw, dt.datetime):
            return raw
        try:
            return dt.datetime.fromisoformat(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected an ISO datetime, got {raw!r}") from None
    raise ValueError(f"unknown parameter type {kind!r}")  # pragma: no cover


def to_text(kind: ParamType, value: Any) -> str:
    """Canonical text of a typed value: stored in the repository and hashed into the key."""
    if kind is ParamType.BOOL:
        return "true" if value else "false"
    if kind in (ParamType.DATE, ParamType.DATETIME):
        return str(value.isoformat())
    if kind is ParamType.FLOAT:
        return repr(float(value))
    return str(value)


def to_json(kind: ParamType, value: Any) -> Any:
    """The JSON form of a typed value (dates as ISO strings)."""
    if kind in (ParamType.DATE, ParamType.DATETIME):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class JobParameter:
    name: str
    type: ParamType
    value: Any
    identifying: bool = True

    @property
    def text(self) -> str:
        return to_text(self.type, self.value)


@dataclass(frozen=True)
class JobParameters:
    """An immutable, ordered set of typed parameters."""

    items: tuple[JobParameter, ...] = ()

    def __getitem__(self, name: str) -> JobParameter:
        for p in self.items:
            if p.name == name:
                return p
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.items)

    def values(self) -> dict[str, Any]:
        """name → typed value: what steps see as ``ctx.params``."""
        return {p.name: p.value for p in self.items}

    def as_json(self) -> dict[str, Any]:
        return {p.name: to_json(p.type, p.value) for p in self.items}

    def identifying(self) -> list[JobParameter]:
        return sorted((p for p in self.items if p.identifying), key=lambda p: p.name)

    def key(self) -> str:
        """sha256 of the canonical identifying parameters: the JobInstance identity."""
        canonical = json.dumps(
            [[p.name, p.type.value, p.text] for p in self.identifying()],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_param(self, param: JobParameter) -> JobParameters:
        return JobParameters((*(p for p in self.items if p.name != param.name), param))


# ---------------------------------------------------------------- restart rules


class LaunchVerdict(StrEnum):
    NEW_INSTANCE = "new-instance"
    RESTART = "restart"
    ALREADY_COMPLETE = "JobInstanceAlreadyComplete"
    ALREADY_RUNNING = "JobExecutionAlreadyRunning"
    ABANDONED = "JobRestart"
    COMPENSATED = "JobInstanceCompensated"
    PREVENT_RESTART = "PreventRestart"
    UNKNOWN_STATE = "UnknownState"


def launch_verdict(last: BatchStatus | None, *, prevent_restart: bool) -> LaunchVerdict:
    """The restart table of DESIGN.md: what a launch of an instance whose last
    execution ended in ``last`` (None: no execution yet) must do."""
    if last is None:
        return LaunchVerdict.NEW_INSTANCE
    if last is BatchStatus.COMPLETED:
        return LaunchVerdict.ALREADY_COMPLETE
    if last in RUNNING:
        return LaunchVerdict.ALREADY_RUNNING
    if last is BatchStatus.ABANDONED:
        return LaunchVerdict.ABANDONED
    if last in (BatchStatus.COMPENSATED, BatchStatus.COMPENSATION_FAILED):
        return LaunchVerdict.COMPENSATED
    if last is BatchStatus.UNKNOWN:
        return LaunchVerdict.UNKNOWN_STATE
    # FAILED, STOPPED
    if prevent_restart:
        return LaunchVerdict.PREVENT_RESTART
    return LaunchVerdict.RESTART


def verdict_message(verdict: LaunchVerdict, job: str, execution_id: int | None) -> str:
    where = f"job '{job}'" + (f" (last execution {execution_id})" if execution_id else "")
    return {
        LaunchVerdict.ALREADY_COMPLETE: f"{where} already completed for these identifying "
        "parameters; change them or use start-next",
        LaunchVerdict.ALREADY_RUNNING: f"{where} is still running for these parameters; "
        "stop it first, or recover it if its process died",
        LaunchVerdict.ABANDONED: f"{where} was abandoned and can never be restarted; "
        "start a new instance",
        LaunchVerdict.COMPENSATED: f"{where} was rolled back by compensation; start a new instance",
        LaunchVerdict.PREVENT_RESTART: f"{where} failed or stopped, and the job sets "
        "preventRestart",
        LaunchVerdict.UNKNOWN_STATE: f"{where} is in state UNKNOWN; recover it first",
    }.get(verdict, f"{where}: {verdict.value}")


def can_stop(status: BatchStatus) -> bool:
    return status in (BatchStatus.STARTING, BatchStatus.STARTED)


ABANDONABLE = (BatchStatus.STOPPED, BatchStatus.FAILED, BatchStatus.UNKNOWN)


def can_abandon(status: BatchStatus) -> bool:
    """Spring Batch: anything not running and not COMPLETED/ABANDONED may be abandoned."""
    return status in ABANDONABLE


def step_should_run(last: BatchStatus | None, *, allow_start_if_complete: bool) -> bool:
    """On (re)start, a step whose last execution in the instance COMPLETED is skipped."""
    return last is not BatchStatus.COMPLETED or allow_start_if_complete


def merge_context(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    merged.update(update)
    return merged
