"""Retention decisions, pure: when a finished BatchExecution is deleted, and which
``ttlSecondsAfterFinished`` an ended step Job should carry.

A BatchExecution is deleted ``ttl`` seconds after it ended: its own
``spec.ttlSecondsAfterFinished``, else the launched BatchJob's ``spec.ttlStrategy``
(``secondsAfterSuccess`` for Completed, ``secondsAfterFailure`` for every other
terminal phase). The time is computed from the status (``endTime``; for an execution
rejected before any launch, its Launched condition), so an operator that restarts
finds the same deadline. An execution with a restart asked for and not yet answered,
or about to restart by itself after a disruption, is not finished. Deleting a finished
execution changes nothing in the repository (the operator's delete handler only fails a
JobExecution that still runs).

A step Job is created with the longer of the two chart TTLs (see
:attr:`OperatorConfig.step_ttl_at_creation`) and set to its outcome's own when it ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton.spec.retention import TtlStrategy

from baton_operator.config import OperatorConfig
from baton_operator.k8s.resources import TERMINAL_PHASES, ExecutionStatus, Phase, parse_time

TERMINAL = frozenset(p.value for p in TERMINAL_PHASES)


@dataclass(frozen=True)
class Expiry:
    """A finished BatchExecution to delete at ``due``, if it is still this object."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    due: dt.datetime


def execution_ttl(own: int | None, strategy: TtlStrategy | None, phase: Phase) -> int | None:
    """Seconds a finished execution stays (None: for good); None while not terminal."""
    if not phase.terminal:
        return None
    if own is not None:
        return own
    if strategy is None:
        return None
    if phase is Phase.COMPLETED:
        return strategy.seconds_after_success
    return strategy.seconds_after_failure


def finished_at(status: ExecutionStatus, created: str | None) -> dt.datetime | None:
    """When the execution ended: ``endTime``, else (never launched: rejected) when its
    Launched condition last changed, else its creation."""
    ended = parse_time(status.end_time)
    if ended is not None:
        return ended
    for c in status.conditions or []:
        if c.type == "Launched" and c.last_transition_time:
            return parse_time(c.last_transition_time)
    return parse_time(created)


def expiry(obj: Mapping[str, Any], strategy: TtlStrategy | None) -> Expiry | None:
    """When to delete this BatchExecution (None: not now, or never)."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    if (obj.get("status") or {}).get("phase") not in TERMINAL or meta.get("deletionTimestamp"):
        return None  # (cheap: every reconcile asks)
    status = ExecutionStatus.model_validate(obj["status"])
    assert status.phase is not None
    if int(spec.get("restart") or 0) > (status.observed_restart or 0):
        return None  # a restart is asked for: the execution goes on
    if _restarts_by_itself(spec, status):
        return None
    ttl = execution_ttl(spec.get("ttlSecondsAfterFinished"), strategy, status.phase)
    ended = finished_at(status, meta.get("creationTimestamp"))
    if ttl is None or ended is None:
        return None
    return Expiry(
        meta["namespace"],
        meta["name"],
        meta["uid"],
        str(meta.get("resourceVersion") or ""),
        ended + dt.timedelta(seconds=ttl),
    )


def _restarts_by_itself(spec: Mapping[str, Any], status: ExecutionStatus) -> bool:
    """Stopped by a pod disruption with automatic restarts left: the reconciler is
    about to restart it (see decide._auto_restart), so it has not finished."""
    auto = spec.get("autoRestart") or {}
    return (
        status.phase is Phase.STOPPED
        and bool(auto.get("onDisruption"))
        and not spec.get("stop")
        and not spec.get("abandon")
        and status.disrupted_attempt is not None
        and status.disrupted_attempt == status.attempt
        and (status.auto_restarts or 0) < int(auto.get("maxRestarts", 3))
    )


@dataclass(frozen=True)
class JobTtl:
    """The ``ttlSecondsAfterFinished`` to give an ended step Job (None: keep it)."""

    seconds: int | None


def step_job_ttl(job: Mapping[str, Any], config: OperatorConfig) -> JobTtl | None:
    """For a step Job that ended, its outcome's TTL when it does not carry it yet;
    None while it runs, or when nothing is to change."""
    conditions = (job.get("status") or {}).get("conditions") or []
    ended = {c.get("type") for c in conditions if c.get("status") == "True"}
    if "Complete" in ended:
        wanted = config.step_ttl_after_success
    elif "Failed" in ended:
        wanted = config.step_ttl_after_failure
    else:
        return None
    if (job.get("spec") or {}).get("ttlSecondsAfterFinished") == wanted:
        return None
    return JobTtl(wanted)
