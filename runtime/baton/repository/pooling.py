"""How a process holds its PostgreSQL connections, chosen by two settings that the Helm
chart gives step pods (and anyone can give a process):

- ``BATON_DB_POOL``: ``keep`` (default) holds one connection for the process's life and
  reuses it for every transaction; ``release`` opens a connection per transaction and
  closes it at the end (SQLAlchemy's NullPool), so a process between two checkpoints
  holds none. ``release`` costs a connect per transaction (TCP, authentication, and TLS
  where used: several round trips and, with SCRAM, milliseconds of CPU on both sides),
  more than most checkpoints, so ``keep`` is the default; an idle connection costs the
  server little, and a pooler is the answer to too many of them. ``release`` is for a
  wide fan-out straight against PostgreSQL whose chunks are long.
- ``BATON_DB_POOLER``: ``HOST:PORT`` of a transaction-mode pooler (PgBouncer) in front
  of the server of ``BATON_DB_URL``: every connection the process makes to that server
  (the repository, and a SQL reader or writer of another database there) goes to the
  pooler instead, with the same user, password, database and options; connections to
  other servers stay direct. Each transaction then borrows one of the pooler's few
  server connections, so thousands of pods fit under ``max_connections``.

Through a pooler, psycopg's prepared statements are off (``prepare_threshold=None``):
psycopg prepares a statement on its fifth execution on a connection, and behind a
transaction-mode pooler (PgBouncer before 1.21, or without ``max_prepared_statements``)
the next transaction may run on a server connection that never saw it ("prepared
statement _pg3_0 does not exist"), a failure that shows only from the fifth chunk on.
Straight to PostgreSQL they stay on: the ``insert`` and ``upsert`` writers'
``executemany`` re-runs one prepared INSERT per row or block, and a 1,000-row chunk took 1.3-1.9x
as long unprepared (bench/checkpoint_connections.py). A ``BATON_DB_URL`` that already
names a pooler (a cloud proxy) says so with ``BATON_DB_POOLER`` set to that same ``HOST:PORT``.

Nothing in Baton keeps session state across transactions, which is what a
transaction-mode pooler needs: advisory locks are ``pg_advisory_xact_lock``, there is no
``SET`` (only the libpq startup parameters, which PgBouncer tracks), no ``LISTEN``, no
temporary table, no cursor held open between transactions; COPY and pipelined
``executemany`` run inside the checkpoint transaction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from baton.core.errors import InvalidSetting

POOL_ENV = "BATON_DB_POOL"
POOLER_ENV = "BATON_DB_POOLER"
KEEP, RELEASE = "keep", "release"


def pg_connecting(
    parsed: URL, env: Mapping[str, str] | None = None
) -> tuple[URL, dict[str, Any], dict[str, Any]]:
    """The URL to connect to, the ``create_engine`` options and the driver's connect
    arguments that the settings in ``env`` (default: the environment) ask for."""
    env = os.environ if env is None else env
    pool = env.get(POOL_ENV, "").strip().lower() or KEEP
    if pool not in (KEEP, RELEASE):
        raise InvalidSetting(f"{POOL_ENV}: expected {KEEP} or {RELEASE}, got {pool!r}")
    parsed, pooled = _route(parsed, env)
    connect: dict[str, Any] = {}
    if pooled and parsed.get_driver_name() == "psycopg":
        connect["prepare_threshold"] = None
    # A connection of its own per transaction needs no liveness check: pre-pinging it
    # would only add a round trip.
    options: dict[str, Any] = (
        {"poolclass": NullPool, "pool_pre_ping": False}
        if pool == RELEASE
        else {"pool_pre_ping": True}
    )
    return parsed, options, connect


def routed(url: URL, env: Mapping[str, str] | None = None) -> URL:
    """``url``, or the same through ``BATON_DB_POOLER`` when it is on the server (host
    and port) of ``BATON_DB_URL``."""
    return _route(url, os.environ if env is None else env)[0]


def _route(url: URL, env: Mapping[str, str]) -> tuple[URL, bool]:
    """(the URL to connect to, whether that is the pooler)."""
    pooler = env.get(POOLER_ENV, "").strip()
    if not pooler:
        return url, False
    address = pooler_address(pooler)
    if _server(url) == address:
        return url, True  # already there (a unit's URL from a pooled executor)
    try:
        # only its host and port count: any scheme (postgres://, postgresql://) parses
        repository = make_url(env.get("BATON_DB_URL", "").strip())
    except (ArgumentError, ValueError):
        return url, False
    if _server(url) != _server(repository):
        return url, False
    return url.set(host=address[0], port=address[1]), True


def _server(url: URL) -> tuple[str, int]:
    return (url.host or "", url.port or 5432)


def pooler_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) of a pooler; a bad one is InvalidSetting."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidSetting(f"{POOLER_ENV}: expected HOST:PORT, got {text!r}")
    return host, int(port)
