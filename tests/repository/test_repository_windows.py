"""``window_records``: a schedule's windows as the repository knows them, in one
query — per window key the instance's last execution and its number of executions,
scoped to (namespace, job), a COMPLETED instance deciding a window that another
instance (other schedule parameters) shares."""

from __future__ import annotations

import datetime as dt

from baton.core.entities import JobExecution
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from baton.repository.windows import window_records

W1, W2, W3 = "2026-01-01T02:00:00+01:00", "2026-01-02T02:00:00+01:00", "2026-01-03T02:00:00+01:00"


def launch(repo: JobRepository, window: str, region: str = "eu", ns: str = "a") -> JobExecution:
    params = JobParameters(
        (
            JobParameter("day", ParamType.DATETIME, dt.datetime.fromisoformat(window), True),
            JobParameter("region", ParamType.STRING, region, True),
        )
    )
    return repo.launch(
        "etl", {"metadata": {"name": "etl"}}, params, prevent_restart=False,
        source_dir=None, owner=None, namespace=ns,
    )  # fmt: skip


def end(repo: JobRepository, e: JobExecution, status: BatchStatus) -> None:
    repo.transition(e.id, BatchStatus.STARTED, action="start", start=True)
    repo.finish(e.id, status, "done")


def test_last_execution_and_count_per_window_in_one_namespace(repo: JobRepository) -> None:
    first = launch(repo, W1)
    end(repo, first, BatchStatus.FAILED)
    again = launch(repo, W1)  # the restart: same instance
    end(repo, again, BatchStatus.COMPLETED)
    running = launch(repo, W2)
    other = launch(repo, W3, ns="b")  # another namespace's window
    found = window_records(repo, "a", "etl", "day", {W1, W2, W3})
    assert set(found) == {W1, W2}
    assert (found[W1].status, found[W1].executions, found[W1].execution_id) == (
        BatchStatus.COMPLETED, 2, again.id,
    )  # fmt: skip
    assert (found[W2].status, found[W2].executions) == (BatchStatus.STARTING, 1)
    assert running.id == found[W2].execution_id and other.id not in (
        r.execution_id for r in found.values()
    )
    assert window_records(repo, "a", "etl", "region", {"eu"})["eu"].executions >= 1
    assert window_records(repo, "a", "etl", "day", set()) == {}


def test_a_completed_instance_decides_a_window_another_instance_shares(
    repo: JobRepository,
) -> None:
    done = launch(repo, W1, region="eu")
    end(repo, done, BatchStatus.COMPLETED)
    failed = launch(repo, W1, region="us")  # the schedule's parameters changed since
    end(repo, failed, BatchStatus.FAILED)
    found = window_records(repo, "a", "etl", "day", {W1})
    assert found[W1].status is BatchStatus.COMPLETED and found[W1].execution_id == done.id
