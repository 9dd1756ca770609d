"""PgBouncer's configuration file, written at pod start by the init container of the
chart's PgBouncer: ``python -m baton_operator.pgbouncer DIR SETTINGS``.

``DIR/pgbouncer.ini`` says where the server is (host, port and TLS mode of BATON_DB_URL,
the release's database Secret: every database the client names goes to that server,
``* =``) and ``%include``s SETTINGS, the chart's ConfigMap (transaction pooling, pool
sizes: lines of the ``[pgbouncer]`` section, without its header, because PgBouncer
starts that section afresh at each header). ``DIR/userlist.txt`` holds the users
PgBouncer lets in and logs in as: the release's own database user and, with
per-namespace credentials, every tenant role (BATON_TENANTS). A step pod whose Secret
names another user is refused by PgBouncer ("no such user").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from baton.repository.engine import normalize_url, redact
from sqlalchemy.engine import make_url

from baton_operator.tenancy import BadTenant, Tenant, tenants_of

# libpq sslmode → PgBouncer server_tls_sslmode (the same words)
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class BadServer(ValueError):
    pass


def _quote(value: str) -> str:
    """A libpq connection-string value, single-quoted (PgBouncer's [databases] syntax)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pgbouncer_ini(url: str, folder: Path, settings: Path) -> str:
    """``[databases]`` (every database, on the server of ``url``), server TLS, the
    users file in ``folder``, then the chart's ``settings``."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "postgresql" or not parsed.host:
        raise BadServer(
            f"PgBouncer needs a postgresql://USER:PASSWORD@HOST URL, not {redact(url)!r}"
        )
    sslmode = str(parsed.query.get("sslmode") or "prefer")
    if sslmode not in SSLMODES:
        raise BadServer(f"sslmode {sslmode!r} in the database URL is not one of {SSLMODES}")
    lines = [
        "[databases]",
        f"* = host={_quote(parsed.host)} port={parsed.port or 5432}",
        "[pgbouncer]",
        f"auth_file = {folder / 'userlist.txt'}",
        f"server_tls_sslmode = {sslmode}",
    ]
    if root := parsed.query.get("sslrootcert"):
        lines.append(f"server_tls_ca_file = {root}")
    lines.append(f"%include {settings}")
    return "\n".join(lines) + "\n"


def userlist(url: str, tenants: Iterable[Tenant]) -> str:
    """``"user" "password"`` lines: the URL's user and each tenant role (plain text, so
    PgBouncer can log in to the server with SCRAM or md5 as the server asks)."""
    parsed = make_url(normalize_url(url))
    if not parsed.username or not parsed.password:
        raise BadServer(
            f"PgBouncer needs the user and password in the database URL ({redact(url)!r}): "
            "it authenticates clients with them"
        )
    users = {parsed.username: parsed.password} | {t.role: t.password for t in tenants}

    def quoted(s: str) -> str:
        return '"' + s.replace('"', '""') + '"'

    return "".join(f"{quoted(u)} {quoted(p)}\n" for u, p in users.items())


def write(folder: Path, settings: Path, url: str, tenants: Iterable[Tenant]) -> None:
    """Both files, private to PgBouncer's user (the password file first)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "userlist.txt": userlist(url, tenants),
        "pgbouncer.ini": pgbouncer_ini(url, folder, settings),
    }
    for name, text in files.items():
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m baton_operator.pgbouncer DIR SETTINGS", file=sys.stderr)
        return 2
    url = os.environ.get("BATON_DB_URL", "")
    if not url:
        print("error: pgbouncer: BATON_DB_URL is not set", file=sys.stderr)
        return 5
    try:
        tenants = tenants_of(os.environ.get("BATON_TENANTS") or "[]")
        write(Path(args[0]), Path(args[1]), url, tenants)
    except (BadServer, BadTenant, KeyError, ValueError) as e:
        print(f"error: pgbouncer: {redact(str(e))}", file=sys.stderr)
        return 5
    print(f"pgbouncer: {len(tenants) + 1} user(s) configured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
