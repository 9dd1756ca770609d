"""The restart table of DESIGN.md as a hypothesis state machine: random launches,
stops, failures, crashes, recoveries and abandons against a real repository, checked
against a model that is the table itself."""

from __future__ import annotations

import shutil
import socket
import tempfile

from baton import BatchStatus, JobOperator, JobRepository, LaunchRejected
from baton.core.errors import (
    InstanceCompensated,
    JobExecutionAlreadyRunning,
    JobInstanceAlreadyComplete,
    JobRestartRejected,
    UnexpectedJobExecutionState,
)
from baton.spec.model import BatchJob
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
DEAD = f"{socket.gethostname()}:999999999:1"
S = BatchStatus


def expected_rejection(last: BatchStatus | None, prevent: bool) -> type[LaunchRejected] | None:
    """The table, written out independently of baton.core."""
    table: dict[BatchStatus | None, type[LaunchRejected] | None] = {
        None: None,
        S.COMPLETED: JobInstanceAlreadyComplete,
        S.STARTING: JobExecutionAlreadyRunning,
        S.STARTED: JobExecutionAlreadyRunning,
        S.STOPPING: JobExecutionAlreadyRunning,
        S.FAILED: JobRestartRejected if prevent else None,
        S.STOPPED: JobRestartRejected if prevent else None,
        S.ABANDONED: JobRestartRejected,
        S.COMPENSATED: InstanceCompensated,
    }
    return table[last]


class RestartTable(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.repo = JobRepository(f"sqlite:///{self.dir}/m.db")
        self.op = JobOperator(self.repo, check_imports=False)
        self.model: dict[str, list[tuple[int, BatchStatus]]] = {d: [] for d in DAYS}
        self.prevent = False
        self.owned: set[int] = set()  # executions a (now dead) process had started

    def teardown(self) -> None:
        self.repo.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(prevent=st.booleans())
    def job(self, prevent: bool) -> None:
        self.prevent = prevent
        self.definition = BatchJob.model_validate(
            {
                "metadata": {"name": "m"},
                "spec": {
                    "preventRestart": prevent,
                    "parameters": [{"name": "day", "type": "date"}],
                    "steps": [{"name": "s", "tasklet": "x:y"}],
                },
            }
        )

    def last(self, day: str) -> tuple[int, BatchStatus] | None:
        return self.model[day][-1] if self.model[day] else None

    def set_last(self, day: str, status: BatchStatus) -> None:
        eid, _ = self.model[day][-1]
        self.model[day][-1] = (eid, status)

    def stale(self, day: str) -> bool:
        """Running, but the process that ran it is gone: recovery will mark it FAILED."""
        last = self.last(day)
        return bool(last and last[1].running and last[0] in self.owned)

    @rule(day=st.sampled_from(DAYS))
    def launch(self, day: str) -> None:
        if self.stale(day):
            self.set_last(day, S.FAILED)  # a launch recovers a dead execution first
        last = self.last(day)
        expected = expected_rejection(last[1] if last else None, self.prevent)
        try:
            e = self.op.launch(self.definition, {"day": day})
        except LaunchRejected as err:
            assert expected is not None and isinstance(err, expected), (last, err)
            assert err.rule in str(err)
            return
        assert expected is None, (last, "launched but expected", expected)
        assert e.status is S.STARTING
        assert e.attempt == len(self.model[day]) + 1
        self.model[day].append((e.id, S.STARTING))

    def _move(self, day: str, to: BatchStatus, owner: str | None = None) -> None:
        eid, _ = self.model[day][-1]
        self.repo.transition(eid, to, action="test", owner=owner, end=to.terminal)
        self.set_last(day, to)

    @rule(day=st.sampled_from(DAYS))
    def start(self, day: str) -> None:
        last = self.last(day)
        if last and last[1] is S.STARTING:
            self._move(day, S.STARTED, owner=DEAD)
            self.owned.add(last[0])

    @rule(day=st.sampled_from(DAYS), outcome=st.sampled_from([S.COMPLETED, S.FAILED]))
    def finish(self, day: str, outcome: BatchStatus) -> None:
        last = self.last(day)
        if last and last[1] is S.STARTED:
            self._move(day, outcome)

    @rule(day=st.sampled_from(DAYS))
    def stop(self, day: str) -> None:
        last = self.last(day)
        if not last:
            return
        eid, status = last
        try:
            e = self.op.stop(eid)
        except UnexpectedJobExecutionState:
            assert status not in (S.STARTING, S.STARTED, S.STOPPING)
            return
        assert status in (S.STARTING, S.STARTED, S.STOPPING)
        # an execution whose process is gone is stopped at once; others are asked to
        expected = S.STOPPED if eid in self.owned and status is S.STARTED else S.STOPPING
        assert e.status is expected, (status, e.status)
        self.set_last(day, e.status)

    @rule(day=st.sampled_from(DAYS))
    def stopped(self, day: str) -> None:
        last = self.last(day)
        if last and last[1] is S.STOPPING:
            self._move(day, S.STOPPED)

    @rule(day=st.sampled_from(DAYS))
    def abandon(self, day: str) -> None:
        last = self.last(day)
        if not last:
            return
        eid, status = last
        try:
            e = self.op.abandon(eid)
        except UnexpectedJobExecutionState:
            assert status in (S.COMPLETED, S.ABANDONED) or (
                status.running and eid not in self.owned
            )
            return
        assert status in (S.STOPPED, S.FAILED) or self.stale(day)  # stale: recovered first
        assert e.status is S.ABANDONED
        self.set_last(day, S.ABANDONED)

    @precondition(lambda self: any(self.model.values()))
    @rule(day=st.sampled_from(DAYS))
    def recover(self, day: str) -> None:
        last = self.last(day)
        if not last:
            return
        eid, status = last
        try:
            e = self.op.recover(eid)
        except UnexpectedJobExecutionState:
            assert not status.running
            return
        except JobExecutionAlreadyRunning:
            assert status.running and eid not in self.owned  # cannot tell: needs --force
            return
        assert self.stale(day) and e.status is S.FAILED
        self.set_last(day, S.FAILED)

    @invariant()
    def repository_agrees_with_model(self) -> None:
        if not hasattr(self, "definition"):
            return
        for e in self.repo.executions(job="m"):
            day = e.parameters["day"].text
            assert (e.id, e.status) in self.model[day], (e, self.model[day])
        for history in self.model.values():
            running = [s for _, s in history if s.running]
            assert len(running) <= 1
            assert all(not s.running for _, s in history[:-1])


TestRestartTable = RestartTable.TestCase
TestRestartTable.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
