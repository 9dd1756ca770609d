"""The schedule controller's pure tick: what it creates, restarts, stops and deletes,
and the status it writes, from the schedule, its BatchExecutions and the repository's
word on the windows (the cluster behaviour itself is proven in e2e)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from baton.core.parameters import ParamType
from baton.core.status import BatchStatus
from baton.schedule.keys import WindowRecord
from baton.schedule.model import ScheduleSpec
from baton_operator.k8s.schedule_resources import ScheduleStatus
from baton_operator.schedule.decide import Decision, Observed, decide, windows_of

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def key(minutes: int) -> str:
    return at(minutes).isoformat()


def bx(minutes: int, phase: str | None, **spec: Any) -> dict[str, Any]:
    status = {"phase": phase} if phase else {}
    return {
        "metadata": {
            "name": f"nightly-{at(minutes):%Y%m%d%H%M}",
            "creationTimestamp": f"2026-01-01T00:{minutes:02d}:05Z",
        },
        "spec": {"job": "report", "parameters": {"day": key(minutes)}, **spec},
        "status": status,
    }


def tick(
    executions: list[dict[str, Any]],
    records: dict[str, BatchStatus],
    now: float,
    status: ScheduleStatus | None = None,
    **fields: Any,
) -> Decision:
    spec = ScheduleSpec.model_validate(
        {"schedule": "* * * * *", "job": "report", "windowParameter": "day", **fields}
    )
    engine = spec.engine()
    obs = Observed(
        name="nightly",
        namespace="ns",
        uid="u-1",
        labels={"team": "data", "baton.dev/schedule": "x"},
        created=T0,
        status=status or ScheduleStatus(last_scheduled_window=at(0).isoformat()),
        executions=executions,
    )
    wins = windows_of(spec, engine, ParamType.DATETIME, obs, at(now))
    known = {k: WindowRecord(s, 1, i) for i, (k, s) in enumerate(records.items(), 1)}
    return decide(spec, engine, ParamType.DATETIME, obs, wins, known, at(now))


def test_a_due_window_gets_a_deterministically_named_owned_execution() -> None:
    d = tick([], {}, now=1.2, parameters={"region": "eu"}, context={"a": 1})
    (body,) = d.create
    meta = body["metadata"]
    assert meta["name"] == "nightly-202601010001"
    assert meta["labels"] == {
        "team": "data",
        "baton.dev/schedule": "nightly",
        "baton.dev/window": "202601010001",
    }
    assert meta["ownerReferences"][0]["uid"] == "u-1"
    assert body["spec"] == {
        "job": "report",
        "parameters": {"region": "eu", "day": key(1)},
        "context": {"a": 1},
    }
    assert d.status.last_scheduled_window == "2026-01-01T00:01:00Z"
    assert d.status.next_window == "2026-01-01T00:02:00Z"
    assert d.status.active == ["nightly-202601010001"]


def test_an_existing_or_completed_window_is_not_created_again() -> None:
    stale = ScheduleStatus(last_scheduled_window=None)  # a lost status write: since = creation
    d = tick([bx(1, None)], {key(2): BatchStatus.COMPLETED}, now=2.5, status=stale)
    assert d.create == []
    assert d.status.last_successful_window == "2026-01-01T00:02:00Z"


def test_a_failed_window_is_restarted_by_its_restart_field_once() -> None:
    d = tick([bx(1, "Failed")], {key(1): BatchStatus.FAILED}, now=1.5)
    assert d.restart == [("nightly-202601010001", 1)] and d.create == []
    pending = bx(1, "Failed", restart=1)  # the operator has not launched it yet
    d = tick([pending], {key(1): BatchStatus.FAILED}, now=1.6)
    assert d.restart == [] and d.create == []


def test_a_failed_window_whose_resource_was_deleted_is_created_again() -> None:
    d = tick([], {key(1): BatchStatus.FAILED}, now=1.5)
    assert [b["metadata"]["name"] for b in d.create] == ["nightly-202601010001"]


def test_replace_stops_the_running_window_first() -> None:
    running = bx(1, "Running")
    d = tick([running], {key(1): BatchStatus.STARTED}, now=2.2, concurrencyPolicy="Replace")
    assert d.stop == ["nightly-202601010001"]
    assert [b["metadata"]["name"] for b in d.create] == ["nightly-202601010002"]


def test_forbid_and_suspend_create_nothing() -> None:
    d = tick([bx(1, "Running")], {}, now=2.2, concurrencyPolicy="Forbid")
    assert d.create == [] and d.status.last_scheduled_window == "2026-01-01T00:01:00Z"
    d = tick([], {}, now=5, suspend=True)
    assert d.create == [] and d.status.next_window is None


def test_history_limits_delete_the_oldest_finished() -> None:
    done = [bx(m, "Completed") for m in (1, 2, 3)] + [bx(m, "Failed") for m in (4, 5)]
    records = {key(m): BatchStatus.COMPLETED for m in (1, 2, 3)}
    records |= {key(m): BatchStatus.FAILED for m in (4, 5)}
    d = tick(
        done,
        records,
        now=5.5,
        successfulExecutionsHistoryLimit=1,
        failedExecutionsHistoryLimit=0,
        restartFailedWindows=False,
        status=ScheduleStatus(last_scheduled_window=at(5).isoformat()),
    )
    assert sorted(d.delete) == sorted(
        f"nightly-20260101000{m}" for m in (1, 2, 4, 5)
    )  # the newest COMPLETED kept


def test_backfill_creates_the_oldest_windows_at_most_max_running_skipping_completed() -> None:
    backfill = {"from": "2026-01-01T00:10", "to": "2026-01-01T00:14", "maxRunning": 2}
    records = {key(10): BatchStatus.COMPLETED}
    d = tick([], records, now=30, backfill=backfill, suspend=True)
    assert [b["metadata"]["name"] for b in d.create] == [
        "nightly-202601010011",
        "nightly-202601010012",
    ]
    assert d.status.backfill is not None
    assert (d.status.backfill.total, d.status.backfill.completed) == (5, 1)
    assert d.status.backfill.running == 2 and not d.status.backfill.done
    running = [bx(11, "Running"), bx(12, None)]
    d = tick(running, records, now=30.2, backfill=backfill, suspend=True)
    assert d.create == []  # two of the backfill's windows still run
