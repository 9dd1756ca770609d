"""The restart rules of DESIGN.md: what a launch of an instance may do, given its last execution."""

from __future__ import annotations

from enum import StrEnum

from baton.core.status import RUNNING, BatchStatus


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


def step_should_run(last: BatchStatus | None, *, allow_start_if_complete: bool) -> bool:
    """On (re)start, a step whose last execution in the instance COMPLETED is skipped."""
    return last is not BatchStatus.COMPLETED or allow_start_if_complete
