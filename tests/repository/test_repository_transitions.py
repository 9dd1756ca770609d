"""The repository moves a job execution along exactly the edges of
``core.status.TRANSITIONS``: every other move is refused and leaves the row as it was,
and the refusal is decided inside the UPDATE (a race cannot slip past it)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from baton.core.entities import JobExecution
from baton.core.errors import UnexpectedJobExecutionState
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.core.status import TRANSITIONS, BatchStatus
from baton.repository import JobRepository
from baton.repository.schema import JobExecutionRow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

E = JobExecutionRow
STATUSES = list(BatchStatus)
_runs = itertools.count(1)


def launched(repo: JobRepository) -> JobExecution:
    """A fresh execution (its own instance), STARTING."""
    params = JobParameters((JobParameter("n", ParamType.INT, next(_runs), True),))
    return repo.launch(
        "t", {"metadata": {"name": "t"}}, params, prevent_restart=False, source_dir=None, owner=None
    )


def put(repo: JobRepository, execution_id: int, status: BatchStatus) -> None:
    """Put an execution in any status, written directly (the table is not asked)."""
    with repo.write() as conn:
        conn.execute(update(E).where(E.id == execution_id).values(status=status.value))


def row(repo: JobRepository, execution_id: int) -> dict[str, Any]:
    with repo.write() as conn:
        return dict(conn.execute(select(E.__table__).where(E.id == execution_id)).one()._mapping)


def check_move(repo: JobRepository, execution_id: int, to: BatchStatus, end: bool) -> None:
    """Ask for ``to``: done iff the table has the edge, else refused with the row unchanged."""
    before = row(repo, execution_id)
    start = BatchStatus(before["status"])
    if to in TRANSITIONS[start]:
        moved = repo.transition(execution_id, to, action="test", end=end, exit_code="X")
        assert moved.status is to, (start, to)
        assert moved.version == before["version"] + 1
        assert moved.exit_code == "X"
    else:
        with pytest.raises(UnexpectedJobExecutionState, match="cannot test execution"):
            repo.transition(execution_id, to, action="test", end=end, exit_code="X")
        assert row(repo, execution_id) == before, (start, to)


def test_every_pair_moves_iff_the_table_has_it(repo: JobRepository) -> None:
    e = launched(repo)
    for start, to in itertools.product(STATUSES, STATUSES):
        put(repo, e.id, start)
        check_move(repo, e.id, to, end=False)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    start=st.sampled_from(STATUSES),
    walk=st.lists(st.tuples(st.sampled_from(STATUSES), st.booleans()), max_size=8),
)
def test_any_walk_follows_the_table(
    repo: JobRepository, start: BatchStatus, walk: list[tuple[BatchStatus, bool]]
) -> None:
    """From any status, a sequence of requests: each moves iff the table has the edge
    from where the execution is by then."""
    e = launched(repo)
    put(repo, e.id, start)
    for to, end in walk:
        check_move(repo, e.id, to, end)


@pytest.mark.parametrize(
    ("to", "raced_to"),
    [
        (BatchStatus.STOPPING, BatchStatus.COMPLETED),  # stop vs the flow finishing
        (BatchStatus.STARTED, BatchStatus.STOPPED),  # start vs a stop while queued
        (BatchStatus.COMPENSATING, BatchStatus.ABANDONED),  # a saga vs an abandon
    ],
)
def test_the_update_itself_checks_the_table(
    repo: JobRepository, to: BatchStatus, raced_to: BatchStatus
) -> None:
    """Another process changes the status between the read and the UPDATE without
    bumping the version: the UPDATE's own WHERE (status IN the sources) refuses it."""
    e = launched(repo)
    start = next(s for s in STATUSES if to in TRANSITIONS[s] and s is not to)
    put(repo, e.id, start)
    assert to not in TRANSITIONS[raced_to]
    raced: list[BatchStatus] = []

    def decide(current: JobExecution) -> BatchStatus:
        if not raced:
            raced.append(current.status)
            put(repo, e.id, raced_to)  # same version: only the table can tell
        return to

    with pytest.raises(UnexpectedJobExecutionState):
        repo.transition(e.id, to, action="test", decide=decide)
    assert raced == [start]
    assert repo.get_execution(e.id).status is raced_to
