"""The local executor does not poll: the statements its own engine issues for an
execution depend on the units it runs, not on how long they run. The same job runs
twice as real subprocess units — once fast, once about five times slower (a sleeping
processor) — and the executor process's statements are counted with SQLAlchemy's
``before_cursor_execute`` (the step processes have engines of their own). Counts, not
timings: a polling loop would issue more statements in the slower run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from baton import BatchStatus, JobOperator, JobRepository
from baton.spec.model import BatchJob
from sqlalchemy import event

JOB = BatchJob.model_validate(
    {
        "metadata": {"name": "steady"},
        "spec": {
            "parameters": [{"name": "count", "type": "int"}, {"name": "run", "type": "int"}],
            "steps": [
                {"name": "prepare", "tasklet": "testjobs:prepare"},
                {
                    "name": "load",
                    "chunk": {
                        "reader": "testjobs:NumbersReader",
                        "processor": "testjobs:process",
                        "writer": "testjobs:OutWriter",
                        "size": 10,
                    },
                },
                {"name": "check", "tasklet": "testjobs:check_context"},
            ],
        },
    }
)
ITEMS = 40  # 4 chunks
SLEEP = 0.01  # per item: 0.4 s of work in the short run, 2 s in the long one


def statements(repo: JobRepository) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split())[:80])

    event.listen(repo.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(repo.engine, "before_cursor_execute", count)


def run_counted(repo: JobRepository, run: int) -> int:
    """Statements of the executor's engine for one execution (a new instance)."""
    op = JobOperator(repo, on_tick=lambda _e, _s: None)  # units are subprocesses
    for seen in statements(repo):
        e = op.start(JOB, {"count": ITEMS, "run": run})
        assert e.status is BatchStatus.COMPLETED, e.exit_description
        return len(seen)
    raise AssertionError("unreachable")


def test_statements_outside_chunks_do_not_grow_with_run_time(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_TEST_SLEEP", str(SLEEP))
    run_counted(repo, 0)  # first use of the repository object: reads what it caches
    short = run_counted(repo, 1)
    monkeypatch.setenv("BATON_TEST_SLEEP", str(SLEEP * 5))  # five times the work time
    long = run_counted(repo, 2)
    assert long == short, f"{short} statements in the short run, {long} in the long one"
