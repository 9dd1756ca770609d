"""The schedule engine with a fake clock (issue 12, work in progress): windows in a
zone across DST, and, for any sequence of ticks, clock jumps, lost state (an operator
restart re-reading an older ``since``) and outcomes, no window launched twice and no
window skipped inside the deadline."""

from __future__ import annotations

import datetime as dt

import pytest
from baton.core.errors import InvalidDefinition
from baton.schedule.windows import (
    Concurrency,
    Launch,
    Missed,
    Restart,
    Schedule,
    Stop,
    Tick,
    WindowStatus,
    check,
    plan,
    windows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EVERY_MINUTE = Schedule(("* * * * *",))


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_windows_fire_in_the_zone_across_dst() -> None:
    s = Schedule(("30 2 * * *",), time_zone="Europe/Berlin")
    after = dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC)
    found = windows(s, after, after + dt.timedelta(days=2))
    # 02:30 does not exist on 29 March in Berlin: it fires at 03:00 CEST (01:00 UTC)
    assert found == [
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 30, 0, 30, tzinfo=dt.UTC),
    ]


def test_two_expressions_firing_together_make_one_window() -> None:
    s = Schedule(("0 * * * *", "*/30 * * * *"))
    assert windows(s, T0, at(60)) == [at(30), at(60)]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (Schedule(()), "at least one cron expression"),
        (Schedule(("61 * * * *",)), "Bad minute"),
        (Schedule(("* * * * *",), time_zone="Mars/Olympus"), "not an IANA zone"),
    ],
)
def test_check_refuses_what_cannot_fire(schedule: Schedule, message: str) -> None:
    with pytest.raises(InvalidDefinition, match=message):
        check(schedule)


def test_catch_up_oldest_first_and_missed_past_the_deadline() -> None:
    s = Schedule(("* * * * *",), starting_deadline_seconds=150)
    p = plan(s, Tick(now=at(5), since=T0, known={}))
    assert p.actions == [Missed(at(1)), Missed(at(2)), Launch(at(3)), Launch(at(4)), Launch(at(5))]
    assert p.since == at(5)


def test_forbid_waits_and_replace_stops_first() -> None:
    forbid = Schedule(("* * * * *",), concurrency=Concurrency.FORBID)
    running = {at(1): WindowStatus.RUNNING}
    p = plan(forbid, Tick(now=at(3), since=at(1), known=running))
    assert p.actions == [] and p.since == at(1)  # window 2 waits
    replace = Schedule(("* * * * *",), concurrency=Concurrency.REPLACE)
    p = plan(replace, Tick(now=at(3), since=at(1), known=running))
    assert p.actions == [Missed(at(2)), Stop(at(1)), Launch(at(3))]


def test_a_failed_window_is_restarted_within_its_budget_and_a_completed_one_never_runs() -> None:
    known = {at(1): WindowStatus.FAILED, at(2): WindowStatus.COMPLETED}
    p = plan(EVERY_MINUTE, Tick(now=at(2), since=T0, known=known))
    assert p.actions == [Restart(at(1))]
    p = plan(EVERY_MINUTE, Tick(now=at(2), since=T0, known=known, restarts={at(1): 3}))
    assert p.actions == []


def test_suspend_and_a_clock_going_back_launch_nothing() -> None:
    suspended = Schedule(("* * * * *",), suspend=True)
    assert plan(suspended, Tick(now=at(5), since=T0, known={})).actions == []
    assert plan(EVERY_MINUTE, Tick(now=at(1), since=at(5), known={})).actions == []


STEPS = st.lists(
    st.tuples(
        st.floats(min_value=-3, max_value=7),  # minutes the clock moves (may go back)
        st.booleans(),  # the operator restarts: `since` re-read from an older status
        st.lists(st.sampled_from(list(WindowStatus)), max_size=4),  # outcomes
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    steps=STEPS,
    policy=st.sampled_from(list(Concurrency)),
    deadline=st.sampled_from([None, 90, 400]),
)
def test_no_window_twice_and_none_skipped_inside_the_deadline(
    steps: list[tuple[float, bool, list[WindowStatus]]],
    policy: Concurrency,
    deadline: int | None,
) -> None:
    s = Schedule(("* * * * *",), concurrency=policy, starting_deadline_seconds=deadline)
    now, since, stale = T0, T0, T0
    known: dict[dt.datetime, WindowStatus] = {}  # the repository: the truth
    restarts: dict[dt.datetime, int] = {}
    launched: list[dt.datetime] = []
    completed: list[dt.datetime] = []
    for move, restart, outcomes in steps:
        now = max(T0, now + dt.timedelta(minutes=move))
        if restart:
            since = stale  # a status write lost: the older `since`
        p = plan(s, Tick(now=now, since=since, known=dict(known), restarts=dict(restarts)))
        for a in p.actions:
            if isinstance(a, Launch):
                assert a.window not in known, "a window launched twice"
                known[a.window] = WindowStatus.RUNNING
                launched.append(a.window)
            elif isinstance(a, Restart):
                assert known[a.window] is WindowStatus.FAILED
                known[a.window] = WindowStatus.RUNNING
                restarts[a.window] = restarts.get(a.window, 0) + 1
            elif isinstance(a, Stop):
                known[a.window] = WindowStatus.FAILED
            elif isinstance(a, Missed):
                assert deadline is not None or policy is Concurrency.REPLACE
                if policy is not Concurrency.REPLACE:
                    assert deadline is not None and (now - a.window).total_seconds() > deadline
        stale, since = since, p.since
        running = sorted(w for w, v in known.items() if v is WindowStatus.RUNNING)
        for w, outcome in zip(running, outcomes, strict=False):
            if outcome is WindowStatus.COMPLETED:
                completed.append(w)
            known[w] = outcome
    assert len(completed) == len(set(completed)), "a window COMPLETED twice"
    assert len(launched) == len(set(launched))
    if policy is Concurrency.ALLOW and deadline is None and steps:
        # nothing skipped: every window up to the last `since` has an instance
        assert all(w in known for w in windows(s, T0, since))
