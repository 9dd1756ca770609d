"""Deadlines in the cluster (pure): ``spec.deadlineSeconds`` is enforced here, where the
attempt's start is known; a step's ``timeoutSeconds`` inside its pods
(:mod:`baton.step.deadline`). Either way the execution ends Failed with the exit code
DeadlineExceeded, which the status shows as the condition ``DeadlineExceeded``."""

from __future__ import annotations

from baton.core.status import DEADLINE_EXCEEDED, BatchStatus
from baton.flow.deadlines import deadline_reason, overdue

from baton_operator.k8s.resources import iso
from baton_operator.reconcile.actions import Event, RequestStop
from baton_operator.reconcile.conditions import without
from baton_operator.reconcile.state import Draft, Situation

HARD_STOP_MARGIN_SECONDS = 60
"""Past the deadline and the stop's grace, how long the Jobs' activeDeadlineSeconds
waits more before Kubernetes kills the pods itself (should the operator be down)."""


def stop_at_deadline(s: Situation, d: Draft) -> bool:
    """Past ``spec.deadlineSeconds``: ask for the stop ``spec.stop`` asks for, marked
    DeadlineExceeded (the flow's end then is Failed); the stop's grace period, then
    the deletion of pods that did not stop, follow as for any stop."""
    seconds = s.execution.spec.deadline_seconds
    if not overdue(s.current, seconds, s.now):
        return False
    assert seconds is not None
    reason = deadline_reason(seconds)
    d.actions.append(RequestStop(s.current.id, DEADLINE_EXCEEDED, reason))
    d.actions.append(Event("Warning", DEADLINE_EXCEEDED, f"{reason}: pods stop at the next chunk"))
    d.status.stop_requested_at = iso(s.now)
    d.emit()
    return True


def job_active_deadline(s: Situation) -> int | None:
    """activeDeadlineSeconds of a step Job created now: the last-resort hard stop of the
    execution's deadline, well after the operator's own stop and its grace period."""
    seconds = s.execution.spec.deadline_seconds
    start = s.current.start_time
    if seconds is None or start is None:
        return None
    left = seconds - (s.now - start).total_seconds()
    grace = s.execution.spec.stop_grace_period_seconds
    return max(1, int(left)) + grace + HARD_STOP_MARGIN_SECONDS


def mirror_deadline(s: Situation, d: Draft) -> None:
    """The condition DeadlineExceeded while the current attempt is stopping or ended
    for a deadline (reason: which one), gone otherwise (e.g. after a restart)."""
    current = s.current
    if current.exit_code != DEADLINE_EXCEEDED or current.status is BatchStatus.COMPLETED:
        d.conditions = without(d.conditions, DEADLINE_EXCEEDED)
        return
    message = current.exit_description.split("\n", 1)[0][:1000]
    # the execution's own deadline says so first; a step's is "step 'x' failed: ..."
    reason = "DeadlineSeconds" if message.startswith(DEADLINE_EXCEEDED) else "TimeoutSeconds"
    d.condition(DEADLINE_EXCEEDED, "True", reason, message, s.now)
