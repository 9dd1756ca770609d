"""The file PgBouncer reads, written by the chart's init container
(baton_operator.pgbouncer): the server of the release's database URL, the users it lets
in, and the chart's settings included."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from baton_operator.pgbouncer import BadServer, main, pgbouncer_ini, userlist
from baton_operator.tenancy import Tenant

URL = "postgresql://baton:s3cr%22et@pg.db.svc:5433/baton?sslmode=require"


def test_every_database_goes_to_the_server_of_the_url() -> None:
    run, settings = Path("/run/pgbouncer"), Path("/etc/pgbouncer/settings.ini")
    assert pgbouncer_ini(URL, run, settings) == (
        "[databases]\n* = host='pg.db.svc' port=5433\n[pgbouncer]\n"
        "auth_file = /run/pgbouncer/userlist.txt\nserver_tls_sslmode = require\n"
        "%include /etc/pgbouncer/settings.ini\n"
    )
    url = "postgresql+psycopg://u:p@10.0.0.7/x?sslmode=verify-full&sslrootcert=/ca.pem"
    ini = pgbouncer_ini(url, run, settings)
    assert "port=5432" in ini and "server_tls_ca_file = /ca.pem" in ini
    assert "server_tls_sslmode = prefer" in pgbouncer_ini("postgres://u:p@h/x", run, settings)


def test_the_users_are_the_url_s_and_the_tenants_with_their_passwords() -> None:
    tenants = [Tenant("team-a", "baton_team_a", "A" * 32)]
    assert userlist(URL, tenants) == f'"baton" "s3cr""et"\n"baton_team_a" "{"A" * 32}"\n'


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://baton@pg/baton", "needs the user and password"),
        ("sqlite:///baton.db", "needs a postgresql://"),
        ("postgresql://u:p@pg/x?sslmode=sometimes", "sslmode 'sometimes'"),
    ],
)
def test_what_pgbouncer_cannot_serve_is_one_line(url: str, message: str) -> None:
    with pytest.raises(BadServer, match=message):
        pgbouncer_ini(url, Path("/run"), Path("/etc/settings.ini"))
        userlist(url, [])


def test_main_writes_both_files_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATON_DB_URL", URL)
    monkeypatch.delenv("BATON_TENANTS", raising=False)
    assert main([str(tmp_path / "run"), "/etc/pgbouncer/settings.ini"]) == 0
    for name in ("userlist.txt", "pgbouncer.ini"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o600
    monkeypatch.setenv("BATON_DB_URL", "postgresql://baton@pg/baton")
    assert main([str(tmp_path / "run"), "/etc/pgbouncer/settings.ini"]) == 5
    err = capsys.readouterr().err
    assert err.startswith("error: pgbouncer: PgBouncer needs the user and password")
    assert err.count("\n") == 1
