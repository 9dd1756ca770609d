"""Engines and schema migrations for SQLite (embedded default) and PostgreSQL (psycopg 3).

SQLite is made safe for several processes at once (the executor, step processes and
``baton stop`` from another terminal): WAL, a busy timeout, and write transactions
that take the write lock up front (``BEGIN IMMEDIATE``) so they wait instead of
failing on lock upgrade.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from baton.errors import DatabaseUnavailable

DEFAULT_URL = "sqlite:///baton.db"
MIGRATIONS = Path(__file__).parent / "migrations"
WRITE = "baton_write"
VERSION_TABLE = "baton_alembic_version"
# The Alembic head this code expects. Spelled out, not computed, so that checking the
# schema needs no Alembic import (which loads and parses every migration script): a
# test keeps it equal to the head of the migrations.
SCHEMA_REVISION = "0002"
# Alembic's version table, for reading the revision inside queries that are needed
# anyway (a separate MetaData: it is not part of the ORM schema the migrations make).
version_table = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32)))


def normalize_url(url: str) -> str:
    """Accept the URLs people paste: plain ``postgresql://`` and ``postgres://`` mean psycopg 3."""
    url = url.strip()
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    return url


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseUnavailable(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://"
        )
    connect_args: dict[str, Any] = {
        "connect_timeout": int(os.environ.get("BATON_DB_CONNECT_TIMEOUT", "10")),
        "application_name": "baton",
    }
    # use_native_hstore=False: no pg_type lookup for hstore on every new process's first
    # connection (a round trip per step pod); Baton has no HSTORE column, and one in a
    # user's table still round-trips as a dict through SQLAlchemy's own HSTORE codec.
    return create_engine(
        url, pool_pre_ping=True, connect_args=connect_args, use_native_hstore=False
    )


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from the start."""
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        yield conn


@cache
def _head() -> str:
    """The head according to the migration scripts (loads Alembic; tests compare it
    with SCHEMA_REVISION)."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_alembic_config()).get_current_head())


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def current_revision(conn: Connection) -> str | None:
    """The schema revision, read with plain SQL: every process asks, few migrate."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to head; a no-op costing one query (and no Alembic import) when
    it is there already.

    Concurrent migrators (several pods starting at once) serialize on a lock: an
    advisory lock on PostgreSQL; on SQLite a file lock beside the database, taken
    before the first query, because a brand-new file is switched to WAL by whichever
    connection comes first and SQLite's busy handler does not cover every such race.
    """
    with _sqlite_file_lock(engine):
        try:
            with engine.connect() as conn:
                if current_revision(conn) == SCHEMA_REVISION:
                    return
        except OperationalError as e:
            raise DatabaseUnavailable(
                f"cannot reach database {redact(str(engine.url))}: {_reason(e)}"
            ) from None
        _upgrade(engine)


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    try:
        lock = open(f"{database}.lock", "a")  # noqa: SIM115 - held across the yield
    except OSError as e:
        raise DatabaseUnavailable(
            f"cannot reach database {redact(str(engine.url))}: unable to open "
            f"{database}.lock: {e.strerror}"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _upgrade(engine: Engine) -> None:
    from alembic import command

    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7234001)"))
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _reason(e: OperationalError) -> str:
    lines = [ln.strip() for ln in str(e.orig or e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
