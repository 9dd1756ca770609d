"""The flow engine: given a job spec and the persisted state of an execution, what
happens next. Pure: no I/O, so both executors share it and it is tested exhaustively.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from baton.domain import BatchStatus, step_should_run
from baton.spec import JobSpec


@dataclass(frozen=True)
class RunStep:
    step: str


@dataclass(frozen=True)
class Wait:
    """A step is running: nothing to decide until it ends."""

    step: str


@dataclass(frozen=True)
class Finish:
    status: BatchStatus
    description: str = ""


Action = RunStep | Wait | Finish


def next_action(
    spec: JobSpec,
    current: Mapping[str, BatchStatus],
    previous: Mapping[str, BatchStatus],
    *,
    stopping: bool = False,
) -> Action:
    """Decide the next action of a chain of steps.

    ``current``: status of each step executed in this execution;
    ``previous``: status of each step's latest execution in earlier executions of the
    same instance (COMPLETED ones are skipped unless ``allowStartIfComplete``);
    ``stopping``: a stop was requested, so no new step starts.
    """
    for step in spec.steps:
        status = current.get(step.name)
        if status is BatchStatus.COMPLETED:
            continue
        if status is BatchStatus.STOPPED:
            return Finish(BatchStatus.STOPPED, f"stopped in step '{step.name}'")
        if status is not None and status.running:
            return Wait(step.name)
        if status is not None:
            return Finish(BatchStatus.FAILED, f"step '{step.name}' {status.value}")
        if not step_should_run(
            previous.get(step.name), allow_start_if_complete=step.allow_start_if_complete
        ):
            continue
        if stopping:
            return Finish(BatchStatus.STOPPED, f"stopped before step '{step.name}'")
        return RunStep(step.name)
    return Finish(BatchStatus.COMPLETED)
