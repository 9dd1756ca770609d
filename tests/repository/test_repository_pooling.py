"""How a process holds its PostgreSQL connections (BATON_DB_POOL, BATON_DB_POOLER): the
pure decision, the engine it makes, and — on the real PostgreSQL — that ``release``
holds no connection between transactions while ``keep`` holds one."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from baton.core.errors import InvalidSetting
from baton.repository.engine import make_engine
from baton.repository.pooling import pg_connecting, pooler_address, routed
from conftest import PG_URL
from sqlalchemy import make_url, text
from sqlalchemy.pool import NullPool, QueuePool

URL = make_url("postgresql+psycopg://u:p%40ss@db.example:5432/baton?sslmode=prefer")


def test_the_default_keeps_one_connection_and_pings_it() -> None:
    url, options, connect = pg_connecting(URL, {})
    assert url == URL
    assert options == {"pool_pre_ping": True}
    assert connect == {}  # psycopg prepares as it likes: no pooler in between


def test_release_opens_a_connection_per_transaction_without_a_ping() -> None:
    _, options, _ = pg_connecting(URL, {"BATON_DB_POOL": " Release "})
    assert options == {"poolclass": NullPool, "pool_pre_ping": False}


POOLED = {"BATON_DB_POOLER": "baton-pgbouncer.ops.svc:6432", "BATON_DB_URL": str(URL)}


def test_a_pooler_takes_the_host_and_port_and_keeps_the_rest() -> None:
    url, _, connect = pg_connecting(URL, POOLED)
    assert (url.host, url.port) == ("baton-pgbouncer.ops.svc", 6432)
    assert (url.username, url.password, url.database) == ("u", "p@ss", "baton")
    assert url.query == {"sslmode": "prefer"}
    assert connect == {"prepare_threshold": None}


def test_only_the_repository_s_server_goes_through_the_pooler() -> None:
    other_db = URL.set(database="sales", username="etl")  # same server: through it
    assert pg_connecting(other_db, POOLED)[0].host == "baton-pgbouncer.ops.svc"
    for elsewhere in (URL.set(host="warehouse"), URL.set(port=5433)):
        assert pg_connecting(elsewhere, POOLED)[0] == elsewhere
    assert routed(URL, {"BATON_DB_POOLER": "p:6432"}) == URL  # no BATON_DB_URL: no server
    again = routed(routed(URL, POOLED), POOLED)  # a URL already through it stays so
    assert (again.host, again.port) == ("baton-pgbouncer.ops.svc", 6432)


def test_a_url_already_at_the_pooler_turns_prepared_statements_off() -> None:
    """A cloud proxy in BATON_DB_URL itself: BATON_DB_POOLER names the same address."""
    env = {"BATON_DB_URL": str(URL), "BATON_DB_POOLER": "db.example:5432"}
    url, _, connect = pg_connecting(URL, env)
    assert url == URL and connect == {"prepare_threshold": None}
    assert pg_connecting(URL.set(host="warehouse"), env)[2] == {}  # not through it


def test_psycopg2_gets_no_psycopg3_argument() -> None:
    _, _, connect = pg_connecting(URL.set(drivername="postgresql+psycopg2"), POOLED)
    assert connect == {}


@pytest.mark.parametrize(
    ("text_", "address"),
    [("pool:6432", ("pool", 6432)), ("[fd00::1]:6432", ("fd00::1", 6432))],
)
def test_pooler_addresses(text_: str, address: tuple[str, int]) -> None:
    assert pooler_address(text_) == address


@pytest.mark.parametrize("bad", ["pool", "pool:", ":6432", "pool:port", "pool:0", "pool:70000"])
def test_a_bad_pooler_address_is_a_one_line_setting_error(bad: str) -> None:
    with pytest.raises(InvalidSetting, match="BATON_DB_POOLER: expected HOST:PORT"):
        pg_connecting(URL, {**POOLED, "BATON_DB_POOLER": bad})


def test_a_bad_pool_setting_is_a_one_line_setting_error() -> None:
    with pytest.raises(InvalidSetting, match="BATON_DB_POOL: expected keep or release"):
        pg_connecting(URL, {"BATON_DB_POOL": "sometimes"})


def test_make_engine_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_DB_POOL", "release")
    monkeypatch.setenv("BATON_DB_POOLER", "127.0.0.1:6432")
    monkeypatch.setenv("BATON_DB_URL", "postgresql://u@db:5432/baton")
    engine = make_engine("postgresql://u@db:5432/baton")
    assert isinstance(engine.pool, NullPool)
    assert (engine.url.host, engine.url.port) == ("127.0.0.1", 6432)
    monkeypatch.delenv("BATON_DB_POOL")
    assert isinstance(make_engine("postgresql://u@db/baton").pool, QueuePool)


def test_a_step_process_with_a_bad_setting_exits_with_one_line() -> None:
    env = dict(os.environ, BATON_DB_POOL="sometimes", BATON_DB_URL="postgresql://u@db/baton")
    run = subprocess.run(
        [sys.executable, "-m", "baton.step", "1", "load"], env=env, capture_output=True, text=True
    )
    assert run.stderr == "error: BATON_DB_POOL: expected keep or release, got 'sometimes'\n"
    assert run.returncode == 5  # bad input, as every BATON_* setting


def _backends(url: str) -> int:
    """This test's connections (application_name baton) to ``url``'s database."""
    admin = make_engine(PG_URL or "")
    with admin.connect() as c:
        sql = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = :d AND application_name = 'baton'"
        )
        n = int(c.execute(text(sql), {"d": make_url(url).database}).scalar_one())
    admin.dispose()
    return n


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="BATON_TEST_PG_URL not set (use make test)")
@pytest.mark.parametrize(("pool", "held"), [("keep", 1), ("release", 0)])
def test_between_transactions_release_holds_no_connection(
    monkeypatch: pytest.MonkeyPatch, pool: str, held: int
) -> None:
    from conftest import _drop_pg_database, _fresh_pg_database

    url, name = _fresh_pg_database()
    try:
        monkeypatch.setenv("BATON_DB_POOL", pool)
        engine = make_engine(url)
        for _ in range(3):
            with engine.begin() as c:
                c.execute(text("SELECT 1"))
        assert _backends(url) == held
        engine.dispose()
    finally:
        _drop_pg_database(name)


def test_a_component_url_naming_the_repository_shares_its_engine_through_the_pooler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SqlWriter whose ``url`` spells out the repository's database still writes in the
    checkpoint transaction (exactly once) when the repository goes through a pooler."""
    from baton.items.database import _engine

    repository = "postgresql://u:p@db:5432/baton"
    monkeypatch.setenv("BATON_DB_URL", repository)
    monkeypatch.setenv("BATON_DB_POOLER", "pool:6432")

    class Step:
        engine = make_engine(repository)

    step: Any = Step()
    assert _engine(step, repository) is step.engine
    assert _engine(step, "postgres://u:p@db/baton") is step.engine  # the same, spelled so
    assert _engine(step, "postgresql://u:p@db:5432/other") is not step.engine
