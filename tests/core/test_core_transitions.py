"""The transition table is the union of what the call sites allowed before it existed,
written out here independently, and the questions derived from it keep their answers."""

from __future__ import annotations

from baton.core.status import TRANSITIONS, BatchStatus, can_abandon, can_stop, sources

S = BatchStatus
ENDS = {S.COMPLETED, S.FAILED, S.STOPPED, S.ABANDONED, S.COMPENSATED, S.COMPENSATION_FAILED}

EXPECTED: dict[BatchStatus, set[BatchStatus]] = {
    S.STARTING: {S.STARTED, S.STOPPING} | ENDS,  # start, stop, finish, recover
    S.STARTED: {S.STOPPING, S.COMPENSATING} | ENDS,
    S.STOPPING: {S.STOPPING, S.COMPENSATING} | ENDS,  # a repeated stop is a no-op move
    S.COMPENSATING: {S.COMPENSATING} | ENDS,
    S.STOPPED: {S.COMPENSATING, S.ABANDONED},  # abandon (with or without a saga)
    S.FAILED: {S.COMPENSATING, S.ABANDONED},
    S.UNKNOWN: {S.COMPENSATING, S.ABANDONED},
    S.COMPLETED: set(),
    S.ABANDONED: set(),
    S.COMPENSATED: set(),
    S.COMPENSATION_FAILED: set(),
}


def test_the_table_is_the_union_of_the_old_call_sites() -> None:
    assert {s: set(t) for s, t in TRANSITIONS.items()} == EXPECTED


def test_every_status_has_a_row_and_the_ends_never_move() -> None:
    assert set(TRANSITIONS) == set(BatchStatus)
    for status, targets in TRANSITIONS.items():
        assert (not targets) == (status.terminal and status not in (S.STOPPED, S.FAILED))


def test_stop_and_abandon_are_asked_of_the_table() -> None:
    assert {s for s in S if can_stop(s)} == {S.STARTING, S.STARTED}
    assert {s for s in S if can_abandon(s)} == {S.STOPPED, S.FAILED, S.UNKNOWN}
    assert sources(S.STARTED) == {S.STARTING}
    assert sources(S.COMPENSATING) == {
        S.STARTED,
        S.STOPPING,
        S.COMPENSATING,
        S.STOPPED,
        S.FAILED,
        S.UNKNOWN,
    }
