"""What both benchmarks need from PostgreSQL: the server's URL and a throwaway database."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from baton.repository.engine import normalize_url
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def server_url(given: str | None) -> str:
    """``given``, else $BATON_TEST_PG_URL, else the private server `scripts/postgres.sh` starts."""
    url = given or os.environ.get("BATON_TEST_PG_URL")
    if url:
        return normalize_url(url)
    out = subprocess.run(
        [str(ROOT / "scripts" / "postgres.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
    )
    return normalize_url(out.stdout.strip().splitlines()[-1])


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``, dropped afterwards."""
    name = f"baton_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def in_database(db_url: str | None, pg_url: str | None, run: Callable[[str], T]) -> T:
    """``run`` in ``db_url`` as it is, else in a throwaway database on the PostgreSQL
    server (``pg_url``, $BATON_TEST_PG_URL or the private one)."""
    if db_url:
        return run(db_url)
    with fresh_database(server_url(pg_url)) as url:
        return run(url)
