"""The flow engine: given a job spec and the persisted state of an execution, what runs
next. Pure — no I/O — so the local executor and the operator share it and it is tested
exhaustively (tests/flow/) without a cluster.

Units of work are steps, or partitions of a partitioned step, keyed ``(step, partition)``.
The engine walks the chain: each entry (a step or a parallel group) must complete before
the next starts. A failure ends the chain; then the saga runs (failed partitions'
compensations, then completed steps' compensations in reverse order), then the callback
(``onComplete``/``onFailure``), then the execution finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baton.core.restart import step_should_run
from baton.core.status import BatchStatus
from baton.flow.actions import (
    Action,
    Finish,
    PlanPartitions,
    RunCallback,
    RunCompensation,
    RunStep,
    Wait,
)
from baton.flow.state import FlowState, Key
from baton.spec.model import JobSpec, StepBody


@dataclass
class _StepEval:
    done: bool = False
    running: bool = False
    failed: list[Key] = field(default_factory=list)
    stopped: bool = False
    runnable: list[int | None] = field(default_factory=list)
    needs_plan: bool = False


def _keys(step: StepBody, state: FlowState) -> list[Key] | None:
    if step.partitions is None:
        return [(step.name, None)]
    if step.name not in state.partitions:
        return None
    return [(step.name, i) for i in range(state.partitions[step.name])]


def _evaluate(step: StepBody, state: FlowState) -> _StepEval:
    ev = _StepEval()
    keys = _keys(step, state)
    if keys is None:
        ev.needs_plan = True
        return ev
    pending = 0
    for key in keys:
        unit = state.steps.get(key)
        if unit is None:
            if step_should_run(
                state.previous.get(key), allow_start_if_complete=step.allow_start_if_complete
            ):
                ev.runnable.append(key[1])
                pending += 1
            continue
        if unit.status is BatchStatus.COMPLETED:
            continue
        pending += 1
        if unit.status.running:
            ev.running = True
        elif unit.continuing:
            ev.runnable.append(key[1])
        elif unit.status is BatchStatus.STOPPED:
            ev.stopped = True
        else:
            ev.failed.append(key)
    ev.done = pending == 0
    return ev


def completed(key: Key, state: FlowState) -> bool:
    unit = state.steps.get(key)
    if unit is not None:
        return unit.status is BatchStatus.COMPLETED
    return state.previous.get(key) is BatchStatus.COMPLETED


def _describe(failed: list[Key], state: FlowState) -> str:
    name, part = failed[0]
    what = f"step '{name}'" if part is None else f"partition {part} of step '{name}'"
    error = state.steps[failed[0]].error.split("\n", 1)[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"{what} failed{more}" + (f": {error}" if error else "")


@dataclass(frozen=True)
class _Outcome:
    status: BatchStatus
    description: str = ""
    failed_at: int | None = None
    """Index of the chain entry that failed (len(steps) for an abandon)."""


def next_actions(spec: JobSpec, state: FlowState) -> list[Action]:
    """The next actions for an execution in ``state``: never empty."""
    chain = _chain(spec, state)
    if isinstance(chain, list):
        return chain
    saga = _saga(spec, state, chain)
    if isinstance(saga, list):
        return saga
    return _callback(spec, state, saga)


def _chain(spec: JobSpec, state: FlowState) -> list[Action] | _Outcome:
    """Walk the chain: the actions to take while it runs, its outcome once it is over."""
    if state.abandoning:
        return _Outcome(BatchStatus.ABANDONED, "abandoned", len(spec.steps))
    for index, entry in enumerate(spec.steps):
        evals = [(m, _evaluate(m, state)) for m in entry.members]
        if all(e.done for _, e in evals):
            continue
        running = [m.name for m, e in evals if e.running]
        failed = [k for _, e in evals for k in e.failed]
        stopped = any(e.stopped for _, e in evals)
        if failed or stopped or state.stopping:
            if running:
                return [Wait(tuple(running))]
            if failed:
                return _Outcome(BatchStatus.FAILED, _describe(failed, state), index)
            where = f"step '{entry.name}'" if entry.parallel is None else f"group '{entry.name}'"
            return _Outcome(BatchStatus.STOPPED, f"stopped {'in' if stopped else 'before'} {where}")
        actions: list[Action] = []
        for m, e in evals:
            if e.needs_plan:
                actions.append(PlanPartitions(m.name))
            elif e.runnable:
                parts = (
                    None if m.partitions is None else tuple(p for p in e.runnable if p is not None)
                )
                actions.append(RunStep(m.name, parts, m.parallelism))
        return actions or [Wait(tuple(running))]
    return _Outcome(BatchStatus.COMPLETED)


def compensation_plan(spec: JobSpec, state: FlowState, failed_at: int) -> list[Key]:
    """Which units to compensate, in order: the failed partitions of the failing entry's
    partitioned steps, then every completed unit with a ``compensate`` before the
    failure (and completed members of the failing group), latest first."""
    plan: list[Key] = []
    if failed_at < len(spec.steps):
        for m in spec.steps[failed_at].members:
            if m.compensate and m.partitions is not None:
                plan += [
                    k
                    for k in (_keys(m, state) or [])
                    if (u := state.steps.get(k)) is not None and u.status is BatchStatus.FAILED
                ]
    done: list[Key] = []
    for entry in spec.steps[: failed_at + 1]:
        for m in entry.members:
            if m.compensate:
                done += [k for k in (_keys(m, state) or []) if completed(k, state)]
    return plan + list(reversed(done))


def compensates_on_abandon(spec: JobSpec, state: FlowState) -> bool:
    """Whether abandoning this (stopped or failed) execution runs a saga first:
    ``compensateOnAbandon`` is set and some completed unit has a compensation."""
    return spec.compensate_on_abandon and bool(compensation_plan(spec, state, len(spec.steps)))


def _saga(spec: JobSpec, state: FlowState, outcome: _Outcome) -> list[Action] | _Outcome:
    """Run the compensations the outcome calls for, one at a time; then the saga's outcome."""
    if outcome.failed_at is None:
        return outcome
    if outcome.status is BatchStatus.ABANDONED and not spec.compensate_on_abandon:
        return outcome
    plan = compensation_plan(spec, state, outcome.failed_at)
    if not plan:
        return outcome
    description = outcome.description
    for key in plan:
        unit = state.compensations.get(key)
        if unit is None:
            failed_unit = state.steps.get(key)
            error = (
                failed_unit.error
                if failed_unit and failed_unit.status is BatchStatus.FAILED
                else description
            )
            return [RunCompensation(key[0], key[1], error.split("\n", 1)[0])]
        if unit.status.running:
            return [Wait((key[0],))]
    bad = [k for k in plan if state.compensations[k].status is not BatchStatus.COMPLETED]
    if bad:
        return _Outcome(
            BatchStatus.COMPENSATION_FAILED,
            f"{description}; compensation of step '{bad[0][0]}' failed",
        )
    return _Outcome(BatchStatus.COMPENSATED, f"{description}; compensated {len(plan)} unit(s)")


def _callback(spec: JobSpec, state: FlowState, result: _Outcome) -> list[Action]:
    outcome, description = result.status, result.description
    if outcome is BatchStatus.COMPLETED:
        callback = spec.on_complete
    elif outcome in (BatchStatus.FAILED, BatchStatus.COMPENSATED, BatchStatus.COMPENSATION_FAILED):
        callback = spec.on_failure
    else:
        callback = None
    if callback is not None:
        unit = state.callbacks.get(callback.name)
        if unit is None:
            return [RunCallback(callback.name, outcome, description)]
        if unit.status.running:
            return [Wait((callback.name,))]
    return [Finish(outcome, description)]
