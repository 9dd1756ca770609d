"""Many executions' state in one transaction (what the operator's tick reads): the same
answer as the four single-execution reads, in a number of statements that does not grow
with the number of executions."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from baton.core.entities import JobExecution
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from sqlalchemy import event

_runs = itertools.count(1)


def launch(repo: JobRepository, n: int | None = None) -> JobExecution:
    value = next(_runs) if n is None else n
    params = JobParameters((JobParameter("n", ParamType.INT, value, True),))
    spec = {"metadata": {"name": "t"}}
    return repo.launch("t", spec, params, prevent_restart=False, source_dir=None, owner=None)


def started(repo: JobRepository, n: int | None = None) -> JobExecution:
    e = launch(repo, n)
    return repo.transition(e.id, BatchStatus.STARTED, action="start", start=True)


def single(repo: JobRepository, execution_id: int) -> tuple[Any, ...]:
    """What the operator read per execution before: four reads."""
    e = repo.get_execution(execution_id)
    return (
        e,
        tuple(repo.step_executions(execution_id)),
        repo.previous_steps(e),
        repo.partition_counts(e.instance_id),
    )


@contextmanager
def statements(repo: JobRepository) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(repo.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(repo.engine, "before_cursor_execute", count)


def scenario(repo: JobRepository, n: int) -> list[int]:
    """n running executions: plain, with steps and partitions, and a restart."""
    ids = []
    for _ in range(n):
        e = started(repo)
        step = repo.open_step(e, "load", None, worker="w")
        repo.finish_step(step, BatchStatus.COMPLETED)
        repo.plan_partitions(e.instance_id, "fan", [1, 2, 3])
        for p in range(3):
            repo.open_step(e, "fan", p, worker="w")
        ids.append(e.id)
    # an instance whose first execution failed and was restarted
    first = started(repo, 10_000 + n)
    done = repo.open_step(first, "load", None, worker="w")
    repo.finish_step(done, BatchStatus.COMPLETED)
    failed = repo.open_step(first, "check", None, worker="w")
    repo.finish_step(failed, BatchStatus.FAILED)
    repo.finish(first.id, BatchStatus.FAILED, "boom")
    again = started(repo, 10_000 + n)
    ids.append(again.id)
    return ids


def test_the_batch_equals_the_single_reads(repo: JobRepository) -> None:
    ids = scenario(repo, 3)
    states = repo.execution_states([*ids, 999_999, -1])
    assert sorted(states) == sorted(ids)  # unknown and impossible ids are left out
    for i in ids:
        e, steps, previous, partitions = single(repo, i)
        got = states[i]
        assert (got.execution, got.steps, dict(got.previous), dict(got.partitions)) == (
            e,
            steps,
            previous,
            partitions,
        )
    restarted = states[ids[-1]]
    assert {k: s.status for k, s in restarted.previous.items()} == {
        ("load", None): BatchStatus.COMPLETED,
        ("check", None): BatchStatus.FAILED,
    }
    assert states[ids[0]].partitions == {"fan": 3}
    assert repo.execution_states([]) == {}


def test_statements_per_read_do_not_grow_with_executions(repo: JobRepository) -> None:
    few = scenario(repo, 2)
    many = scenario(repo, 12)
    with statements(repo) as small:
        repo.execution_states(few)
    with statements(repo) as large:
        repo.execution_states(few + many)
    selects = [s for s in large if s.lstrip().upper().startswith("SELECT")]
    assert len(small) == len(large) and len(selects) == 5
