"""A real PgBouncer (Debian's ``pgbouncer``) in transaction mode in front of the test
PostgreSQL, for a database and role of its own with a CONNECTION LIMIT: what the chart
deploys, on this machine. Runs as a non-root user (PgBouncer refuses root): ``postgres``
when the tests run as root (scripts/postgres.sh installs that user), else the caller."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

BINARY = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)
PASSWORD = "pooled-secret"


@dataclass(frozen=True)
class Pooled:
    """A role (``limit`` connections at most) owning a database, and a PgBouncer."""

    url: str  # straight to PostgreSQL, as the chart's step Secret holds it
    pooler: str  # HOST:PORT of PgBouncer: BATON_DB_POOLER
    role: str
    database: str
    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {"BATON_DB_POOLER": self.pooler}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _owner() -> tuple[int, int] | None:
    """(uid, gid) to run PgBouncer as; None: this process's own user."""
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam("postgres")
    return user.pw_uid, user.pw_gid


def _config(folder: Path, server: str, port: int, pool_size: int, role: str) -> Path:
    (folder / "userlist.txt").write_text(f'"{role}" "{PASSWORD}"\n')
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = {server}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {folder / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
        "max_client_conn = 1000\nignore_startup_parameters = extra_float_digits\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    return ini


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("pgbouncer did not listen within 15 s")


@contextmanager
def pgbouncer(admin_url: str, *, limit: int, pool_size: int) -> Iterator[Pooled]:
    """A fresh role with ``CONNECTION LIMIT limit`` owning a fresh database, and a
    PgBouncer (``pool_size`` server connections per database and user) in front."""
    assert BINARY, "pgbouncer is not installed"
    base = make_url(admin_url)
    role = database = f"baton_pool_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}' CONNECTION LIMIT {limit}"))
        c.execute(text(f"CREATE DATABASE {database} OWNER {role}"))
    folder = Path(tempfile.mkdtemp(prefix="baton-pgbouncer-"))
    owner = _owner()
    port = _free_port()
    server = f"host={base.host} port={base.port or 5432}"
    ini = _config(folder, server, port, pool_size, role)
    if owner:
        for p in (folder, *folder.iterdir()):
            os.chown(p, *owner)
    user = {"user": owner[0], "group": owner[1]} if owner else {}
    proc = subprocess.Popen(
        [BINARY, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **user
    )  # type: ignore[call-overload]
    log = folder / "pgbouncer.log"
    try:
        _wait_listening(port, proc, log)
        url = base.set(username=role, password=PASSWORD, database=database)
        yield Pooled(url.render_as_string(False), f"127.0.0.1:{port}", role, database, log)
    finally:
        proc.terminate()
        proc.wait(10)
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            c.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)
