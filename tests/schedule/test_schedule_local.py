"""``baton schedule run``'s engine on this machine, with a fake clock and real runs
(in-process units): one instance per window across a scheduler restart and a second
scheduler, a FAILED window restarted from its checkpoint rather than launched anew,
suspend, Forbid and Replace, and a backfill that skips the COMPLETED window."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from baton import BatchStatus, JobOperator, JobRepository
from baton.core.entities import JobExecution
from baton.launch.schedule import LocalScheduler
from baton.registry.jobs import RegisteredJob
from baton.schedule.model import ScheduleSpec
from baton.schedule.windows import Launch, Missed, Restart, Stop
from baton.spec.model import BatchJob

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

JOB = BatchJob.model_validate(
    {
        "metadata": {"name": "windows"},
        "spec": {
            "parameters": [
                {"name": "day", "type": "datetime"},
                {"name": "items", "type": "int", "identifying": False, "default": 5},
            ],
            "steps": [
                {
                    "name": "load",
                    "chunk": {
                        "reader": "windowjobs:WindowReader",
                        "writer": "windowjobs:NullWriter",
                        "size": 1,
                    },
                }
            ],
        },
    }
)


class Clock:
    def __init__(self) -> None:
        self.now = T0 + dt.timedelta(seconds=30)

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, minutes: float) -> None:
        self.now = T0 + dt.timedelta(minutes=minutes)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture(autouse=True)
def _window_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WINDOW_DIR", str(tmp_path))
    monkeypatch.setenv("WINDOW_SLEEP", "0")


def scheduler(repo: JobRepository, clock: Clock, **spec: Any) -> LocalScheduler:
    fields = {"schedule": "* * * * *", "job": "windows", "windowParameter": "day", **spec}
    return LocalScheduler(
        JobOperator(repo, in_process=True),
        RegisteredJob(JOB, None),
        ScheduleSpec.model_validate(fields),
        clock=clock,
    )


def executions_by_window(repo: JobRepository) -> dict[str, list[JobExecution]]:
    out: dict[str, list[JobExecution]] = {}
    for e in sorted(repo.executions(job="windows"), key=lambda e: e.id):
        out.setdefault(e.parameters["day"].text, []).append(e)
    return out


def key(minutes: int) -> str:
    return at(minutes).isoformat()


def committing(repo: JobRepository, window: int) -> None:
    """Until the window's step has committed a chunk (it is really running)."""
    while True:
        runs = executions_by_window(repo).get(key(window), [])
        if runs and any(s.commit_count for s in repo.step_executions(runs[-1].id)):
            return
        time.sleep(0.02)


def test_one_instance_per_window_across_a_restart_and_a_second_scheduler(
    repo: JobRepository,
) -> None:
    clock = Clock()
    first = scheduler(repo, clock)
    assert first.tick() == []  # a new schedule does not run its past
    clock.at(3.1)
    assert first.tick() == [Launch(at(1)), Launch(at(2)), Launch(at(3))]
    first.wait()
    clock.at(3.5)
    again, other = scheduler(repo, clock), scheduler(repo, clock)  # a restart, a replica
    assert again.tick() == [] and other.tick() == []
    clock.at(4.2)
    assert again.tick() == [Launch(at(4))]
    other.tick()  # sees window 4 RUNNING or COMPLETED, or is refused by the restart rules
    again.wait()
    other.wait()
    runs = executions_by_window(repo)
    assert sorted(runs) == [key(1), key(2), key(3), key(4)]
    assert all(len(v) == 1 and v[0].status is BatchStatus.COMPLETED for v in runs.values())


def test_a_failed_window_is_restarted_from_its_checkpoint_not_launched_anew(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINDOW_FAIL_ONCE", key(1))
    clock = Clock()
    s = scheduler(repo, clock)
    s.tick()
    clock.at(1.2)
    assert s.tick() == [Launch(at(1))]
    s.wait()
    clock.at(1.5)
    assert s.tick() == [Restart(at(1))]
    s.wait()
    clock.at(1.7)
    assert s.tick() == []
    (failed, restarted) = executions_by_window(repo)[key(1)]
    assert failed.status is BatchStatus.FAILED and restarted.status is BatchStatus.COMPLETED
    assert restarted.instance_id == failed.instance_id and restarted.attempt == 2
    (step,) = repo.step_executions(restarted.id)
    assert step.read_count == 3  # items 3..5: resumed after the 2 committed before


def test_suspend_launches_nothing(repo: JobRepository) -> None:
    clock = Clock()
    s = scheduler(repo, clock, suspend=True)
    s.tick()
    clock.at(5)
    assert s.tick() == []
    assert repo.executions(job="windows") == []


def test_forbid_waits_for_the_running_window(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINDOW_SLEEP", "0.05")
    clock = Clock()
    s = scheduler(repo, clock, concurrencyPolicy="Forbid", parameters={"items": 10_000})
    s.tick()
    clock.at(1.1)
    assert s.tick() == [Launch(at(1))]
    committing(repo, 1)
    clock.at(2.1)
    assert s.tick() == []  # window 2 waits while window 1 runs
    s.stop_all()
    s.wait()
    (only,) = executions_by_window(repo)[key(1)]
    assert only.status is BatchStatus.STOPPED, only.exit_description
    assert key(2) not in executions_by_window(repo)


def test_replace_stops_the_running_window_at_a_chunk_boundary_first(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINDOW_SLEEP", "0.05")
    clock = Clock()
    s = scheduler(repo, clock, concurrencyPolicy="Replace", parameters={"items": 10_000})
    s.tick()
    clock.at(1.1)
    s.tick()
    committing(repo, 1)
    clock.at(3.1)
    assert s.tick() == [Missed(at(2)), Stop(at(1)), Launch(at(3))]
    s.stop_all()
    s.wait()
    runs = executions_by_window(repo)
    assert [e.status for e in runs[key(1)]] == [BatchStatus.STOPPED]
    assert [e.status for e in runs[key(3)]] == [BatchStatus.STOPPED]  # stopped by stop_all
    (step,) = repo.step_executions(runs[key(1)][0].id)
    assert step.status is BatchStatus.STOPPED and step.commit_count == step.read_count


def test_backfill_runs_at_most_max_running_and_skips_the_completed_window(
    repo: JobRepository,
) -> None:
    clock = Clock()
    clock.at(30)
    s = scheduler(repo, clock)
    s._start(key(12), lambda: s._launch(key(12)), "launched")  # window 12 already done
    s.wait()
    peak = 0
    while not s.backfill(at(10), at(14), max_running=2):
        peak = max(peak, len(s.running))
        time.sleep(0.05)
    assert peak <= 2
    runs = executions_by_window(repo)
    assert sorted(runs) == [key(m) for m in (10, 11, 12, 13, 14)]
    assert all(len(v) == 1 and v[0].status is BatchStatus.COMPLETED for v in runs.values())
    spans = [(e.start_time, e.end_time) for v in runs.values() for e in v if e.start_time]
    assert max(sum(1 for s2, e2 in spans if s2 <= s1 < e2) for s1, _ in spans) <= 2
