"""Engines and schema migrations for SQLite (embedded default) and PostgreSQL (psycopg 3).

SQLite is made safe for several processes at once (the executor, step processes and
``baton stop`` from another terminal): WAL, a busy timeout, and write transactions
that take the write lock up front (``BEGIN IMMEDIATE``) so they wait instead of
failing on lock upgrade. A write lock held longer than the busy timeout ends in
:class:`~baton.core.errors.DatabaseBusy` (exit 6), never in a traceback: 60 s for step
processes and the executor (a checkpoint had better wait out another's short
transaction than fail its chunk), 10 s for interactive commands (``stop``, listings:
an answer soon; every Baton write transaction is milliseconds long, so 10 s means
something else holds the lock). ``BATON_DB_BUSY_TIMEOUT`` overrides both.
"""

from __future__ import annotations

import math
import os
import re
import weakref
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
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, ProgrammingError

from baton.core.errors import DatabaseBusy, DatabaseUnavailable, InvalidSetting

DEFAULT_URL = "sqlite:///baton.db"
MIGRATIONS = Path(__file__).parent / "migrations"
WRITE = "baton_write"
VERSION_TABLE = "baton_alembic_version"
# The Alembic head this code expects. Spelled out, not computed, so that checking the
# schema needs no Alembic import (which loads and parses every migration script): a
# test keeps it equal to the head of the migrations.
SCHEMA_REVISION = "0004"
# Alembic's version table, for reading the revision inside queries that are needed
# anyway (a separate MetaData: it is not part of the ORM schema the migrations make).
version_table = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32)))
BUSY_TIMEOUT_ENV = "BATON_DB_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT = 60.0  # step processes and the executor
INTERACTIVE_BUSY_TIMEOUT = 10.0  # stop, abandon, recover, listings
PG_DRIVERS = ("psycopg", "psycopg2")
SQLITE_HEADER = b"SQLite format 3\x00"
# What make_engine found out about a SQLite engine: its file and its busy timeout.
_SQLITE: weakref.WeakKeyDictionary[Engine, tuple[str, float]] = weakref.WeakKeyDictionary()


def normalize_url(url: str) -> str:
    """Accept the URLs people paste: plain ``postgresql://`` and ``postgres://`` mean psycopg 3."""
    url = url.strip()
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    return url


# scheme://user:PASSWORD@ (the password runs to the last @ of the token: an unencoded
# @ in a password must not leak its tail) and the scheme-less user:PASSWORD@host.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*):[^\s'\"]*@")
_BARE_USERINFO = re.compile(r"(?<![\w.+\-/:%@])(?P<head>[\w.\-%]+):(?!//)[^\s'\"/]*@")
_KEYWORD = re.compile(r"(?i)\b(?P<head>password|passwd|pwd)(?P<eq>\s*=\s*)('[^']*'|[^\s'\"]+)")


def redact(text: str) -> str:
    """``text`` with every password in it replaced by ``***``: URLs (parseable or not),
    ``user:password@host`` and libpq ``password=...``. Every message that may hold a
    database URL goes through here."""
    text = _USERINFO.sub(r"\g<head>:***@", text)
    text = _BARE_USERINFO.sub(r"\g<head>:***@", text)
    return _KEYWORD.sub(r"\g<head>\g<eq>***", text)


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password (what the repository refuses to store)."""
    return redact(url) != url


def busy_timeout(default: float = DEFAULT_BUSY_TIMEOUT) -> float:
    """Seconds a SQLite writer waits for the write lock: $BATON_DB_BUSY_TIMEOUT, else
    ``default`` (the caller's role: a step or an interactive command)."""
    return _seconds_setting(BUSY_TIMEOUT_ENV, default)


def _seconds_setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidSetting(f"{name}: expected a number of seconds, got {raw!r}")
    return value


def make_engine(url: str, *, interactive: bool = False) -> Engine:
    """An engine for a repository (or component) URL; a URL that cannot be one is a
    one-line DatabaseUnavailable with the password redacted. ``interactive``: the
    shorter SQLite busy timeout of commands a person waits for."""
    url = normalize_url(url)
    if "\x00" in url:  # no driver or file system takes one; os.stat raises ValueError
        raise DatabaseUnavailable(f"not a database URL: {redact(url)!r}: it contains a NUL")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(
            f"not a database URL: {redact(url)!r}: expected sqlite:///PATH or "
            "postgresql://USER@HOST[:PORT]/DB"
        ) from None
    except ValueError:  # SQLAlchemy parses the port with int()
        raise DatabaseUnavailable(
            f"not a database URL: {redact(url)!r}: the port is not a number"
        ) from None
    # From the URL's text: get_driver_name() loads the dialect, which raises for an
    # unknown scheme (http://) instead of saying it is not a database.
    backend, _, driver = parsed.drivername.partition("+")
    driver = driver or {"sqlite": "pysqlite", "postgresql": "psycopg2"}.get(backend, "")
    if backend == "sqlite" and driver == "pysqlite":
        default = INTERACTIVE_BUSY_TIMEOUT if interactive else DEFAULT_BUSY_TIMEOUT
        return _sqlite_engine(parsed, busy_timeout(default))
    if backend == "postgresql" and driver in PG_DRIVERS:
        return _pg_engine(parsed, url)
    if backend in ("sqlite", "postgresql"):
        raise DatabaseUnavailable(
            f"unsupported database driver {parsed.drivername!r} in {redact(url)!r}: "
            "use sqlite:/// or postgresql:// (psycopg 3)"
        )
    raise DatabaseUnavailable(
        f"unsupported database {backend!r} in {redact(url)!r}: use sqlite:/// or postgresql://"
    )


def _pg_engine(parsed: URL, url: str) -> Engine:
    connect_args: dict[str, Any] = {
        "connect_timeout": max(1, round(_seconds_setting("BATON_DB_CONNECT_TIMEOUT", 10))),
        "application_name": "baton",
    }
    # use_native_hstore=False: no pg_type lookup for hstore on every new process's first
    # connection (a round trip per step pod); Baton has no HSTORE column, and one in a
    # user's table still round-trips as a dict through SQLAlchemy's own HSTORE codec.
    psycopg = parsed.get_driver_name() == "psycopg"
    options: dict[str, Any] = {"use_native_hstore": False} if psycopg else {}
    # BATON_DB_POOL / BATON_DB_POOLER (imported here: a SQLite process never needs it)
    from baton.repository.pooling import pg_connecting

    parsed, pooling, connect = pg_connecting(parsed)
    try:
        return create_engine(parsed, connect_args={**connect_args, **connect}, **options, **pooling)
    except ImportError as e:
        raise DatabaseUnavailable(
            f"database driver {parsed.get_driver_name()!r} is not installed "
            f"({redact(url)!r}): use postgresql:// (psycopg 3)"
        ) from e


def _sqlite_engine(parsed: URL, timeout: float) -> Engine:
    path = _sqlite_path(parsed)

    engine = create_engine(parsed, connect_args={"timeout": timeout})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    _SQLITE[engine] = (path, timeout)
    return engine


def _sqlite_path(parsed: URL) -> str:
    """The repository file, checked and (when new) created private (0600): the -wal and
    -shm files SQLite makes beside it take its mode."""
    database = parsed.database or ""
    if (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or parsed.query.get("mode") == "memory"
    ):
        raise DatabaseUnavailable(
            "sqlite:///:memory: cannot hold a job repository: an in-memory database "
            "belongs to one process and vanishes with it (steps run in their own); "
            "use a file, e.g. sqlite:///baton.db"
        )
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _check_sqlite_file(database)
    except OSError:
        pass  # a missing directory, no permission: SQLite's own error says it on connect
    else:
        os.close(fd)
    return database


def _check_sqlite_file(database: str) -> None:
    try:
        with open(database, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except IsADirectoryError:
        raise DatabaseUnavailable(
            f"cannot use {database} as a job repository: it is a directory"
        ) from None
    except OSError:
        return  # unreadable: SQLite reports it on connect
    if header and header != SQLITE_HEADER:
        raise DatabaseUnavailable(
            f"cannot use {database} as a job repository: it is not a SQLite database"
        )


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
    """The schema revision, read with plain SQL: every process asks, few migrate. One
    query when the schema is there (no catalog lookup first); None without the table
    (then ``conn``'s failed transaction is rolled back)."""
    try:
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    except (OperationalError, ProgrammingError):
        conn.rollback()
        if inspect(conn).has_table(VERSION_TABLE):
            raise
        return None


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
                revision = current_revision(conn)
                conn.commit()  # a read: ended by COMMIT, not ROLLBACK
            if revision == SCHEMA_REVISION:
                return
            _upgrade(engine)
        except DBAPIError as e:
            raise unavailable(e, engine) from None


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = _SQLITE[engine][0] if engine in _SQLITE else None
    if database is None and engine.dialect.name == "sqlite":  # an engine made elsewhere
        database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    try:
        # 0600 like the database: the lock file sits beside it
        fd = os.open(f"{database}.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as e:
        raise DatabaseUnavailable(
            f"cannot reach database {display_url(engine)}: unable to open "
            f"{database}.lock: {e.strerror}"
        ) from None
    with os.fdopen(fd, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _upgrade(engine: Engine) -> None:
    # Alembic is imported and configured before the write lock is taken, not while
    # every other process waits for it.
    from alembic import command

    cfg = _alembic_config()
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7234001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# ---------------------------------------------------------------- errors

_BUSY = (
    "database is locked",
    "database table is locked",
    "database schema is locked",
    "lock timeout",
    "could not obtain lock",
)
_NOT_A_DATABASE = ("file is not a database", "file is encrypted")
_UNREACHABLE = (
    "connection",
    "could not connect",
    "unable to open",
    "server closed",
    "timeout",
    "readonly database",
    "disk i/o error",
    "database or disk is full",
    "terminating",
    "the database system is",
)


def display_url(engine: Engine) -> str:
    """The engine's URL fit for a message: no password."""
    return redact(engine.url.render_as_string(hide_password=True))


def is_unavailable(e: DBAPIError) -> bool:
    """Whether ``e`` is about the database (down, busy, not one) rather than about the
    statement (a constraint, a missing table): only the latter may be a user's error
    that a skip or retry policy handles."""
    low = _reason(e).lower()
    return (
        bool(getattr(e, "connection_invalidated", False))
        or any(s in low for s in (*_BUSY, *_NOT_A_DATABASE))
        or (isinstance(e, OperationalError) and any(s in low for s in _UNREACHABLE))
    )


def unavailable(e: DBAPIError, engine: Engine) -> DatabaseUnavailable:
    """The one-line error (exit 6) for a database error: DatabaseBusy when another
    process held the write lock past the busy timeout."""
    reason = redact(_reason(e))
    low = reason.lower()
    where = display_url(engine)
    if any(s in low for s in _BUSY):
        held = f" for more than {_SQLITE[engine][1]:g}s" if engine in _SQLITE else ""
        return DatabaseBusy(
            f"database is busy: {where}: another process has held its write lock{held} "
            f"({BUSY_TIMEOUT_ENV} sets the wait); try again"
        )
    if any(s in low for s in _NOT_A_DATABASE):
        return DatabaseUnavailable(
            f"cannot use {where} as a job repository: it is not a SQLite database"
        )
    return DatabaseUnavailable(f"cannot reach database {where}: {reason}")


def _reason(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    lines = [ln.strip() for ln in str(orig or e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
