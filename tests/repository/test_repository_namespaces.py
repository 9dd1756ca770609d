"""Namespace-scoped instances: in a cluster an instance is (namespace, job, key), so
team-a's ``etl`` and team-b's ``etl`` with the same parameters are two instances with
their own restart rules, run.id and concurrency limits; locally (namespace '') nothing
changes. Migration 0003 keeps the rows of a 0002 database working, and gives the
repository the id an operator records in its executions."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from alembic import command
from baton.core.entities import JobExecution
from baton.core.errors import JobInstanceAlreadyComplete
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from baton.repository.engine import _alembic_config, make_engine, write_transaction
from sqlalchemy import text

PARAMS = JobParameters((JobParameter("day", ParamType.STRING, "2026-11-29", True),))
SPEC = {"metadata": {"name": "etl"}}


def launch(
    repo: JobRepository, namespace: str, params: JobParameters = PARAMS, **kw: object
) -> JobExecution:
    return repo.launch(
        "etl",
        SPEC,
        params,
        prevent_restart=False,
        source_dir=None,
        owner=None,
        namespace=namespace,
        **kw,  # type: ignore[arg-type]
    )


def complete(repo: JobRepository, execution: JobExecution) -> None:
    repo.transition(execution.id, BatchStatus.STARTED, action="start", start=True)
    repo.finish(execution.id, BatchStatus.COMPLETED, "done")


def test_two_namespaces_same_job_and_parameters_are_two_instances(repo: JobRepository) -> None:
    a = launch(repo, "team-a")
    b = launch(repo, "team-b")
    local = launch(repo, "")
    assert len({a.instance_id, b.instance_id, local.instance_id}) == 3
    complete(repo, a)
    # team-a's instance is complete; team-b's and the local one are not affected
    with pytest.raises(JobInstanceAlreadyComplete):
        launch(repo, "team-a")
    complete(repo, b)
    repo.finish(local.id, BatchStatus.FAILED, "boom")
    again = launch(repo, "")  # a restart of the local instance
    assert (again.instance_id, again.attempt) == (local.instance_id, 2)
    assert [e.id for e in repo.executions(job="etl", namespace="team-b")] == [b.id]
    assert {e.id for e in repo.executions(job="etl")} == {a.id, b.id, local.id, again.id}
    assert repo.last_execution("etl", PARAMS.key()) == repo.get_execution(again.id)
    assert repo.last_execution("etl", PARAMS.key(), "team-a") == repo.get_execution(a.id)


def test_the_incrementer_counts_per_namespace(repo: JobRepository) -> None:
    for _ in range(3):
        launch(repo, "team-a", JobParameters(), next_id="run.id")
    first_b = launch(repo, "team-b", JobParameters(), next_id="run.id")
    assert first_b.parameters.values()["run.id"] == 1
    assert repo.next_run_id("etl", namespace="team-a") == 4
    assert repo.next_run_id("etl", namespace="team-b") == 2
    assert repo.next_run_id("etl") == 1  # local: none yet


def test_max_running_counts_the_executions_of_one_namespace(repo: JobRepository) -> None:
    def admit(e: JobExecution) -> bool:
        return repo.admit(
            e, max_running=1, cooldown_seconds=0, waiting_alive=lambda _: True, owner="t"
        )

    a1, a2, b1 = (
        launch(repo, ns, JobParameters((JobParameter("n", ParamType.INT, i, True),)))
        for i, ns in enumerate(("team-a", "team-a", "team-b"))
    )
    assert admit(a1)
    assert not admit(a2)  # team-a has one running
    assert admit(b1)  # team-b has none
    repo.finish(a1.id, BatchStatus.COMPLETED, "done")
    assert admit(a2)


def test_the_repository_id_is_one_uuid_per_database(repo: JobRepository, tmp_path: Path) -> None:
    assert str(uuid.UUID(repo.repository_id)) == repo.repository_id
    again = JobRepository(repo.url, engine=repo.engine)
    assert again.repository_id == repo.repository_id
    other = JobRepository(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert other.repository_id != repo.repository_id
    finally:
        other.dispose()


def test_upgrading_a_0002_database_keeps_its_instances(db_url: str) -> None:
    """Rows of a 0002 database (an instance with a partition and a COMPLETED
    execution) become the local instance (namespace ''): its restart rule still holds,
    its partitions stay, and a namespace gets an instance of its own."""
    engine = make_engine(db_url)
    cfg = _alembic_config()
    with write_transaction(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO baton_job_instance (id, job_name, job_key, created_at) "
                "VALUES (1, 'etl', :key, :now)"
            ),
            {"key": PARAMS.key(), "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO baton_job_execution (id, instance_id, version, attempt, status, "
                "exit_code, exit_description, created_at, last_updated, job_spec, context) "
                "VALUES (1, 1, 0, 1, 'COMPLETED', 'COMPLETED', '', :now, :now, '{}', '{}')"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO baton_partition (instance_id, step_name, idx, args, created_at) "
                "VALUES (1, 'load', 0, '{\"f\": 1}', :now)"
            ),
            {"now": now},
        )
    repo = JobRepository(db_url, engine=engine)  # migrates to head
    try:
        with pytest.raises(JobInstanceAlreadyComplete):
            launch(repo, "")
        assert repo.partition_counts(1) == {"load": 1}
        assert launch(repo, "team-a").instance_id != 1
        uuid.UUID(repo.repository_id)
    finally:
        repo.dispose()
