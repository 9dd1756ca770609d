"""Properties of the pure flow engine, for random job shapes and random outcomes:
no unit runs twice in an attempt, a restart never reruns a COMPLETED unit,
compensations run exactly for the completed steps in reverse order (and for failed
partitions), and every execution reaches a terminal state."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from baton.core.status import BatchStatus
from baton.flow.actions import Finish, PlanPartitions, RunCallback, RunCompensation, RunStep, Wait
from baton.flow.engine import next_actions
from baton.flow.state import FlowState, Key, Unit
from baton.spec.model import JobSpec
from hypothesis import given, settings
from hypothesis import strategies as st

S = BatchStatus


@st.composite
def job_specs(draw: st.DrawFn) -> JobSpec:
    n = draw(st.integers(1, 5))
    counter = iter(range(100))
    entries: list[dict[str, Any]] = []

    def step() -> dict[str, Any]:
        s: dict[str, Any] = {"name": f"s{next(counter)}", "tasklet": "m:f"}
        if draw(st.booleans()):
            s["compensate"] = "m:undo"
        if draw(st.integers(0, 3)) == 0:
            s["partitions"] = {"count": draw(st.integers(1, 4))}
        return s

    for _ in range(n):
        if draw(st.integers(0, 4)) == 0:
            entries.append({"parallel": [step() for _ in range(draw(st.integers(2, 3)))]})
        else:
            entries.append(step())
    spec: dict[str, Any] = {"steps": entries}
    if draw(st.booleans()):
        spec["onComplete"] = {"name": "done", "tasklet": "m:cb"}
    if draw(st.booleans()):
        spec["onFailure"] = {"name": "failed", "tasklet": "m:cb"}
    return JobSpec.model_validate(spec)


def chain_units(spec: JobSpec, partitions: dict[str, int]) -> list[tuple[Key, Any]]:
    """Every unit in chain order (entry, member, partition), with its step spec."""
    out = []
    for entry in spec.steps:
        for m in entry.members:
            if m.partitions is None:
                out.append(((m.name, None), m))
            else:
                out += [((m.name, i), m) for i in range(partitions.get(m.name, 0))]
    return out


def simulate(
    spec: JobSpec,
    data: st.DataObject,
    previous: dict[Key, BatchStatus],
    partitions: dict[str, int],
    *,
    stop_after: int | None = None,
) -> tuple[FlowState, Finish, list[Key], list[Key], dict[str, int]]:
    state = FlowState(previous=previous, partitions=dict(partitions))
    started: list[Key] = []
    compensated: list[Key] = []
    for turn in range(500):
        if stop_after is not None and turn == stop_after:
            state = replace(state, stopping=True)
        actions = next_actions(spec, state)
        assert actions, "the engine must always say what to do"
        for action in actions:
            if isinstance(action, Finish):
                assert action.status.terminal
                return state, action, started, compensated, dict(state.partitions)
            if isinstance(action, PlanPartitions):
                step = spec.step(action.step)
                assert step.partitions is not None and step.partitions.count is not None
                state = replace(
                    state, partitions={**state.partitions, action.step: step.partitions.count}
                )
            elif isinstance(action, RunStep):
                keys = [(action.step, p) for p in (action.partitions or (None,))]
                for key in keys:
                    assert key not in state.steps, f"{key} ran twice in one attempt"
                    assert previous.get(key) is not S.COMPLETED, f"{key} reran after COMPLETED"
                    started.append(key)
                    outcome = data.draw(st.sampled_from([S.COMPLETED, S.COMPLETED, S.FAILED]))
                    state = replace(state, steps={**state.steps, key: Unit(outcome, error="x")})
            elif isinstance(action, RunCompensation):
                key = (action.step, action.partition)
                assert key not in state.compensations, f"{key} compensated twice"
                compensated.append(key)
                outcome = data.draw(st.sampled_from([S.COMPLETED, S.COMPLETED, S.FAILED]))
                state = replace(state, compensations={**state.compensations, key: Unit(outcome)})
            elif isinstance(action, RunCallback):
                assert action.step not in state.callbacks
                state = replace(
                    state, callbacks={**state.callbacks, action.step: Unit(S.COMPLETED)}
                )
            else:
                assert isinstance(action, Wait)
                raise AssertionError("nothing is running, yet the engine waits")
    raise AssertionError("no terminal state after 500 turns")


@settings(max_examples=300, deadline=None)
@given(spec=job_specs(), data=st.data())
def test_random_flows_terminate_and_compensate_in_reverse(
    spec: JobSpec, data: st.DataObject
) -> None:
    state, finish, started, compensated, partitions = simulate(spec, data, {}, {})
    failed = [k for k, u in state.steps.items() if u.status is S.FAILED]
    if not failed:
        assert finish.status is S.COMPLETED
        assert compensated == []
        assert set(started) == {k for k, _ in chain_units(spec, partitions)}
        return
    units = chain_units(spec, partitions)
    failing_entry = next(
        i
        for i, e in enumerate(spec.steps)
        if any(m.name == k[0] for m in e.members for k in failed)
    )
    # nothing after the failing entry ran
    later = {m.name for e in spec.steps[failing_entry + 1 :] for m in e.members}
    assert not any(k[0] in later for k in started)
    # failed partitions of the failing entry first, then completed units in reverse order
    failing_names = {m.name for m in spec.steps[failing_entry].members}
    expected_failed = [
        k
        for k, m in units
        if k in failed and m.compensate and m.partitions is not None and k[0] in failing_names
    ]
    expected_done = [
        k
        for k, m in units
        if m.compensate and state.steps.get(k, Unit(S.FAILED)).status is S.COMPLETED
    ]
    expected = expected_failed + list(reversed(expected_done))
    assert compensated == expected
    if expected:
        comp_failed = any(u.status is S.FAILED for u in state.compensations.values())
        assert finish.status is (S.COMPENSATION_FAILED if comp_failed else S.COMPENSATED)
    else:
        assert finish.status is S.FAILED
    callback = spec.on_failure
    assert (callback.name in state.callbacks) if callback else not state.callbacks


@settings(max_examples=200, deadline=None)
@given(spec=job_specs(), data=st.data())
def test_restart_never_reruns_completed_units(spec: JobSpec, data: st.DataObject) -> None:
    spec = spec.model_copy(
        update={
            "steps": [
                e.model_copy(update={"compensate": None}) if e.parallel is None else e
                for e in spec.steps
            ]
        }
    )
    first, finish, _, _, partitions = simulate(spec, data, {}, {})
    if finish.status is S.COMPLETED:
        return
    previous = {k: u.status for k, u in first.steps.items()}
    # the second attempt: the engine asserts inside simulate that no COMPLETED unit reruns
    _second, _, started, _, _ = simulate(spec, data, previous, partitions)
    for key in started:
        assert previous.get(key) is not S.COMPLETED


@settings(max_examples=100, deadline=None)
@given(spec=job_specs(), data=st.data(), stop_after=st.integers(0, 3))
def test_stop_ends_stopped_or_done(spec: JobSpec, data: st.DataObject, stop_after: int) -> None:
    _, finish, _, _, _ = simulate(spec, data, {}, {}, stop_after=stop_after)
    assert finish.status in (S.STOPPED, S.COMPLETED, S.FAILED, S.COMPENSATED, S.COMPENSATION_FAILED)


def test_continuing_unit_runs_again_and_partitions_plan_first() -> None:
    spec = JobSpec.model_validate(
        {
            "steps": [
                {"name": "a", "tasklet": "m:f", "maxDurationSeconds": 5},
                {"name": "b", "tasklet": "m:f", "partitions": {"count": 3}, "parallelism": 2},
            ]
        }
    )
    cont = FlowState(steps={("a", None): Unit(S.STOPPED, "CONTINUE")})
    assert next_actions(spec, cont) == [RunStep("a", None, None)]
    done_a = FlowState(steps={("a", None): Unit(S.COMPLETED)})
    assert next_actions(spec, done_a) == [PlanPartitions("b")]
    planned = replace(done_a, partitions={"b": 3})
    assert next_actions(spec, planned) == [RunStep("b", (0, 1, 2), 2)]
    running = replace(planned, steps={**planned.steps, ("b", 0): Unit(S.STARTED)})
    assert next_actions(spec, running) == [RunStep("b", (1, 2), 2)]
    stopping = replace(running, stopping=True)
    assert next_actions(spec, stopping) == [Wait(("b",))]
