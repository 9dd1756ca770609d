"""Per-namespace database credentials (issue 11): a tenant role runs its own steps to the
end with the real step runtime, and PostgreSQL refuses it everything of another
namespace — reads come back empty, writes are refused, deletes are not granted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from baton.core.entities import JobExecution
from baton.core.errors import NoSuchExecution
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from baton.repository.engine import normalize_url
from baton.spec.model import BatchJob
from baton.step.runner import run_step
from baton_operator.tenancy import BadTenant, Tenant, apply, tenants_of
from conftest import PG_URL, _drop_pg_database, _fresh_pg_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

NUMBERS = Path(__file__).resolve().parents[2] / "examples" / "numbers"
PASSWORD = "s3cretS3cretS3cret"


def test_names_and_passwords_are_checked_before_they_reach_ddl() -> None:
    ok = {"namespace": "team-a", "role": "baton_team_a", "password": PASSWORD}
    assert tenants_of(json.dumps([ok])) == [Tenant("team-a", "baton_team_a", PASSWORD)]
    for bad in (
        {**ok, "role": "x'; DROP TABLE baton_job_instance; --"},
        {**ok, "role": "baton_tenant"},  # the group itself
        {**ok, "password": "short"},
        {**ok, "password": "quote'quote'quote'quote"},
        {**ok, "namespace": "Team_A"},
    ):
        with pytest.raises(BadTenant):
            tenants_of(json.dumps([bad]))
    with pytest.raises(BadTenant, match="share a role"):
        tenants_of(json.dumps([ok, {**ok, "namespace": "team-b"}]))


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not PG_URL:
        pytest.fail("BATON_TEST_PG_URL is not set (make test sets it)")
    url, name = _fresh_pg_database()
    roles = [f"{name}_a", f"{name}_b"]
    yield url
    _drop_pg_database(name)
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for role in roles:
            c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


def launch(repo: JobRepository, namespace: str, count: int) -> JobExecution:
    job = BatchJob.model_validate(yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    e = repo.launch(
        job.name,
        job.dump(),
        job.spec.bind({"count": count}),
        prevent_restart=False,
        source_dir=str(NUMBERS),
        owner="t",
        namespace=namespace,
    )
    return repo.transition(e.id, BatchStatus.STARTED, action="start", start=True)


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=PASSWORD).render_as_string(False)


@pytest.mark.postgres
def test_a_tenant_runs_its_own_steps_and_cannot_touch_another_namespaces_rows(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(NUMBERS))
    db = make_url(pg_url).database
    a = Tenant("team-a", f"{db}_a", PASSWORD)
    b = Tenant("team-b", f"{db}_b", PASSWORD)
    apply(pg_url, [a, b])  # on an empty database: migrates first
    owner = JobRepository(pg_url)
    mine, theirs = launch(owner, "team-a", 5), launch(owner, "team-b", 6)
    apply(pg_url, [a, b])  # again: idempotent
    repo_a = JobRepository(as_role(pg_url, a.role))
    try:
        for step in ("prepare", "load", "check"):
            assert run_step(repo_a, mine.id, step, None) == 0
        assert owner.get_execution(mine.id).status is BatchStatus.STARTED  # steps done
        with pytest.raises(NoSuchExecution):
            run_step(repo_a, theirs.id, "prepare", None)
        engine = create_engine(as_role(pg_url, a.role), isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            ids = c.execute(text("SELECT id FROM baton_job_execution")).scalars().all()
            assert ids == [mine.id]
            other = {"e": theirs.id}
            stolen = "UPDATE baton_job_execution SET status = 'FAILED' WHERE id = :e"
            assert c.execute(text(stolen), other).rowcount == 0
            with pytest.raises(DBAPIError, match="row-level security"):
                c.execute(
                    text(
                        "INSERT INTO baton_job_execution_param "
                        "(execution_id, name, type, value, identifying) "
                        "VALUES (:e, 'x', 'str', 'y', false)"
                    ),
                    other,
                )
            with pytest.raises(DBAPIError, match="permission denied"):
                c.execute(text("DELETE FROM baton_job_execution"))
            with pytest.raises(DBAPIError, match="permission denied"):
                c.execute(text("SELECT * FROM baton_tenant_role"))
        engine.dispose()
        # a tenant dropped from the list can no longer log in
        apply(pg_url, [b])
        with pytest.raises(DBAPIError, match="not permitted to log in"):
            create_engine(as_role(pg_url, a.role)).connect()
        with pytest.raises(DBAPIError, match="bypasses row-level security"):
            apply(pg_url, [b, Tenant("team-c", make_url(PG_URL).username or "", PASSWORD)])
    finally:
        repo_a.dispose()
        owner.dispose()
    assert owner.get_execution(theirs.id).status is BatchStatus.STARTED
