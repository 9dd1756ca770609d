"""Alembic migrations of the job repository: an empty database upgraded to head has
exactly the ORM's schema, on SQLite and PostgreSQL; migrating again is a no-op; several
processes migrating one database at once all succeed."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from baton import BatchStatus, JobRepository
from baton.repository.engine import (
    _alembic_config,
    current_revision,
    make_engine,
    migrate,
    write_transaction,
)
from baton.repository.schema import Base
from sqlalchemy import Connection, Engine, event, inspect, text

VERSION_TABLE = "baton_alembic_version"
SCRIPTS = ScriptDirectory.from_config(_alembic_config())
HEAD = str(SCRIPTS.get_current_head())
FIRST = str(SCRIPTS.get_base())
DDL = ("CREATE", "ALTER", "DROP")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    yield e
    e.dispose()


def schema_diffs(engine: Engine) -> list[Any]:
    """What autogenerate would put in a new migration: nothing, when they agree."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(ctx, Base.metadata))


def alembic(engine: Engine, verb: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade REVISION`` on the repository's migrations."""
    with write_transaction(engine) as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, revision)


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def ddl_sent(engine: Engine, fn: Any) -> list[str]:
    sent: list[str] = []

    def record(_c: Connection, _cur: Any, stmt: str, *_: Any) -> None:
        sent.append(stmt)

    event.listen(engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return [s for s in sent if s.lstrip().upper().startswith(DDL)]


def test_upgrading_an_empty_database_yields_exactly_the_orm_schema(engine: Engine) -> None:
    assert tables(engine) == set()
    migrate(engine)
    assert revision(engine) == HEAD
    assert tables(engine) == set(Base.metadata.tables) | {VERSION_TABLE}
    assert schema_diffs(engine) == []


def test_the_comparison_would_see_a_drift(engine: Engine) -> None:
    """Guards the test above against comparing nothing: a missing index is a diff."""
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_baton_skipped_step"))
    diffs = schema_diffs(engine)
    assert [d[0] for d in diffs] == ["add_index"]
    assert diffs[0][1].name == "ix_baton_skipped_step"


def test_the_migrations_form_one_line_of_history() -> None:
    heads = SCRIPTS.get_heads()
    assert heads == [HEAD], f"several heads: {heads}; merge them"
    revisions = list(SCRIPTS.walk_revisions())
    assert revisions[-1].revision == FIRST
    assert all(r.down_revision is not None for r in revisions[:-1])


def test_migrating_twice_is_a_noop(engine: Engine, db_url: str) -> None:
    migrate(engine)
    # At head, migrate() only reads the version: no DDL, no transaction taken.
    assert ddl_sent(engine, lambda: migrate(engine)) == []
    # Alembic itself, asked to upgrade an up-to-date database, does nothing either.
    assert ddl_sent(engine, lambda: alembic(engine, "upgrade", "head")) == []
    assert revision(engine) == HEAD
    assert schema_diffs(engine) == []
    # A repository opened on it twice (each opening migrates) works.
    for _ in range(2):
        repo = JobRepository(db_url)
        assert repo.job_names() == []
        repo.dispose()


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    migrate(engine)
    alembic(engine, "downgrade", "base")
    assert revision(engine) is None
    assert tables(engine) - {VERSION_TABLE} == set()
    alembic(engine, "upgrade", "head")
    assert revision(engine) == HEAD
    assert schema_diffs(engine) == []


def test_upgrading_from_the_first_revision_keeps_the_rows(engine: Engine) -> None:
    alembic(engine, "upgrade", FIRST)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO baton_job_instance (id, job_name, job_key, created_at) "
                "VALUES (1, 'old-job', 'k1', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO baton_job_execution (id, instance_id, version, attempt, status, "
                "exit_code, exit_description, created_at, last_updated, job_spec, context) "
                "VALUES (1, 1, 0, 1, 'FAILED', 'FAILED', 'boom', :now, :now, :spec, '{}')"
            ),
            {"now": now, "spec": '{"metadata": {"name": "old-job"}}'},
        )
    alembic(engine, "upgrade", "head")
    assert schema_diffs(engine) == []
    repo = JobRepository(str(engine.url.render_as_string(False)), engine=engine)
    (execution,) = repo.executions(job="old-job")
    assert (execution.id, execution.status, execution.exit_description) == (
        1,
        BatchStatus.FAILED,
        "boom",
    )


MIGRATOR = """
import sys, time
from baton.repository.engine import current_revision, make_engine, migrate
engine = make_engine(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
migrate(engine)
with engine.connect() as conn:
    print(current_revision(conn))
"""


@pytest.mark.slow
def test_concurrent_migrations_all_succeed(engine: Engine, db_url: str) -> None:
    """Several pods starting at once on an empty database: each one migrates (they
    serialize on a lock), none fails, the schema is made once."""
    start = time.time() + 2.0  # all start together, after their imports
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, db_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert out.strip() == HEAD
    assert schema_diffs(engine) == []
    with engine.connect() as conn:
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    assert versions == [HEAD]
