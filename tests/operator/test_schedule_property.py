"""The schedule controller's tick against a simulated cluster and repository, for any
sequence of clock moves, operator restarts (a status write lost: the older status read
again), launches and outcomes: no window ever has two BatchExecutions or two COMPLETED
executions, a FAILED window is only ever restarted (its instance's next execution),
and with no deadline every window up to the last scheduled one got its execution."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from baton.core.parameters import ParamType
from baton.core.status import BatchStatus
from baton.schedule.keys import WindowRecord
from baton.schedule.model import ScheduleSpec
from baton.schedule.windows import windows
from baton_operator.k8s.schedule_resources import ScheduleStatus
from baton_operator.schedule.decide import Observed, decide, windows_of
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PHASE = {BatchStatus.COMPLETED: "Completed", BatchStatus.FAILED: "Failed"}


@dataclass
class World:
    """BatchExecutions by name and the repository's executions per window key."""

    cluster: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, list[BatchStatus]] = field(default_factory=dict)

    def records(self) -> dict[str, WindowRecord]:
        return {k: WindowRecord(v[-1], len(v), len(v)) for k, v in self.runs.items() if v}

    def launch_pending(self, launch: bool) -> None:
        """The BatchExecution controller: a new or restarted execution launched in the
        repository under the restart rules."""
        for obj in self.cluster.values():
            status, spec = obj["status"], obj["spec"]
            key = spec["parameters"]["day"]
            runs = self.runs.setdefault(key, [])
            new = status.get("phase") is None
            restart = spec.get("restart", 0) > status.get("observedRestart", 0)
            if not launch or not (new or restart):
                continue
            assert BatchStatus.COMPLETED not in runs, f"window {key} launched after COMPLETED"
            if runs and runs[-1] is BatchStatus.STARTED:
                status["phase"] = "Rejected"
                continue
            runs.append(BatchStatus.STARTED)
            status.update(phase="Running", observedRestart=spec.get("restart", 0))

    def outcomes(self, results: list[bool]) -> None:
        running = [o for o in self.cluster.values() if o["status"].get("phase") == "Running"]
        for obj, ok in zip(running, results, strict=False):
            end = BatchStatus.COMPLETED if ok else BatchStatus.FAILED
            self.runs[obj["spec"]["parameters"]["day"]][-1] = end
            obj["status"]["phase"] = PHASE[end]


STEPS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=4),  # minutes the clock moves
        st.booleans(),  # the operator restarts: the status read is the one before
        st.booleans(),  # the BatchExecutions get launched before the next tick
        st.lists(st.booleans(), max_size=3),  # outcomes of the running ones
    ),
    max_size=20,
)


@settings(max_examples=100, deadline=None)
@given(steps=STEPS, policy=st.sampled_from(["Allow", "Forbid", "Replace"]))
def test_exactly_once_per_window_whatever_the_ticks(
    steps: list[tuple[float, bool, bool, list[bool]]], policy: str
) -> None:
    spec = ScheduleSpec.model_validate(
        {"schedule": "* * * * *", "job": "j", "windowParameter": "day",
         "concurrencyPolicy": policy, "successfulExecutionsHistoryLimit": 1000,
         "failedExecutionsHistoryLimit": 1000}
    )  # fmt: skip
    engine = spec.engine()
    world = World()
    now, status, older = T0, ScheduleStatus(), ScheduleStatus()
    for move, restart, launch, results in steps:
        now += dt.timedelta(minutes=move)
        if restart:
            status = older
        obs = Observed("s", "ns", "u", {}, T0, status, list(world.cluster.values()))
        wins = windows_of(spec, engine, ParamType.DATETIME, obs, now)
        d = decide(spec, engine, ParamType.DATETIME, obs, wins, world.records(), now)
        for body in d.create:
            # an existing name is a 409 AlreadyExists: the window has its execution
            world.cluster.setdefault(
                body["metadata"]["name"], {**copy.deepcopy(body), "status": {}}
            )
        for name, bump in d.restart:
            obj = world.cluster[name]
            assert obj["status"]["phase"] in ("Failed", "Stopped")
            obj["spec"]["restart"] = bump
        for name in d.stop:
            world.cluster[name]["spec"]["stop"] = True
        older, status = status, d.status
        world.launch_pending(launch)
        world.outcomes(results)
    keys = [o["spec"]["parameters"]["day"] for o in world.cluster.values()]
    assert len(keys) == len(set(keys)), "a window with two BatchExecutions"
    for key, runs in world.runs.items():
        assert runs.count(BatchStatus.COMPLETED) <= 1, key
        assert all(r is BatchStatus.FAILED for r in runs[:-1]), (key, runs)  # restarts only
    if policy == "Allow" and status.last_scheduled_window:
        last = dt.datetime.fromisoformat(status.last_scheduled_window.replace("Z", "+00:00"))
        due = {w.isoformat() for w in windows(engine, T0, last, limit=10_000)}
        assert due <= set(keys), "a window skipped"
