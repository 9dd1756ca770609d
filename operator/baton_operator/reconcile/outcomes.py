"""What ``.status`` says after an attempt the applier made: a launch that succeeded or
was refused (by the restart rules, bad parameters or an invalid BatchJob), an execution
the repository lost, an execution that must queue, a disrupted pod. Pure: the applier
reports what happened, these decide the status and the events."""

from __future__ import annotations

import datetime as dt

from baton.core.entities import JobExecution

from baton_operator.k8s.resources import ExecutionStatus, Phase
from baton_operator.reconcile.actions import Action, Event, Launch, MergeStatus, PatchStatus
from baton_operator.reconcile.conditions import has_reason, set_condition, without


def launched(
    status: ExecutionStatus,
    execution: JobExecution,
    action: Launch,
    now: dt.datetime,
    repository_id: str | None = None,
) -> list[Action]:
    """A JobExecution now answers the BatchExecution: a fresh status for it, bound to
    the repository that launched it (``repository_id``: see ``reconcile.foreign``)."""
    # (PodsReady: the pods of an earlier attempt, gone)
    conditions = without(
        status.conditions or [], "Rejected", "Restarted", "PodsReady", "DeadlineExceeded"
    )
    text = (
        f"JobExecution {execution.id} (attempt {execution.attempt}) "
        f"of instance {execution.instance_id}"
    )
    new = ExecutionStatus(
        phase=Phase.of(execution.status),
        instance_id=execution.instance_id,
        repository_id=repository_id,
        attempt=execution.attempt,
        observed_restart=action.observed_restart,
        auto_restarts=action.auto_restarts or None,
        job_generation=action.job_generation,
        conditions=set_condition(conditions, "Launched", "True", action.reason, text, now),
        steps=[],
        progress="0%",
        # a disruption recorded before the launch still names its attempt
        disrupted_pod=status.disrupted_pod,
        disrupted_attempt=status.disrupted_attempt,
    )
    new.execution_id = execution.id  # (by name: the constructor takes the wire alias)
    message = (
        f"JobExecution {execution.id}, attempt {execution.attempt}, "
        f"instance {execution.instance_id}"
    )
    return [PatchStatus(new.dump()), Event("Normal", action.reason, message)]


def rejected(
    status: ExecutionStatus,
    rule: str,
    message: str,
    now: dt.datetime,
    observed_restart: int | None = None,
) -> list[Action]:
    """A launch refused: phase Rejected, the rule as the Launched condition's reason."""
    conditions = set_condition(status.conditions or [], "Launched", "False", rule, message, now)
    patch = ExecutionStatus(
        phase=Phase.REJECTED,
        conditions=conditions,
        exit_description=message,
        observed_restart=observed_restart,
    )
    out: list[Action] = [MergeStatus(patch.dump())]
    if status.phase is not Phase.REJECTED or observed_restart:
        out.append(Event("Warning", "Rejected", message))
    return out


def restart_rejected(
    status: ExecutionStatus, rule: str, message: str, observed_restart: int, now: dt.datetime
) -> list[Action]:
    """A restart refused: the execution keeps its phase; the Restarted condition says why."""
    conditions = set_condition(status.conditions or [], "Restarted", "False", rule, message, now)
    patch = ExecutionStatus(conditions=conditions, observed_restart=observed_restart)
    return [MergeStatus(patch.dump()), Event("Warning", "RestartRejected", message)]


def lost(status: ExecutionStatus, why: str, now: dt.datetime) -> list[Action]:
    """The status names a JobExecution the repository does not have (the database
    was replaced or restored): say so once, instead of failing every reconcile."""
    if has_reason(status.conditions, "ExecutionLost"):
        return []
    message = f"{why}: the job repository lost this execution (database replaced?)"
    conditions = set_condition(
        status.conditions or [], "Launched", "False", "ExecutionLost", message, now
    )
    patch = ExecutionStatus(phase=Phase.FAILED, conditions=conditions, exit_description=message)
    return [MergeStatus(patch.dump()), Event("Warning", "ExecutionLost", message)]


def queued(status: ExecutionStatus, max_running: int, cooldown_seconds: float) -> list[Action]:
    """Not admitted (the job's concurrency limits): phase Queued, said once."""
    if status.phase is Phase.QUEUED:
        return []
    text = f"waiting: at most {max_running} running at once" + (
        f", {cooldown_seconds:g}s between starts" if cooldown_seconds else ""
    )
    patch = ExecutionStatus(phase=Phase.QUEUED)
    return [MergeStatus(patch.dump()), Event("Normal", "Queued", text)]


def disrupted(status: ExecutionStatus, pod: str, attempt: int) -> list[Action]:
    """A step pod is being disrupted: remember it (once), so the stop it causes can
    restart by itself (spec.autoRestart.onDisruption)."""
    if status.disrupted_pod == pod:
        return []
    patch = ExecutionStatus(disrupted_pod=pod, disrupted_attempt=attempt)
    return [
        MergeStatus(patch.dump()),
        Event("Warning", "Disrupted", f"pod {pod} is being disrupted"),
    ]
