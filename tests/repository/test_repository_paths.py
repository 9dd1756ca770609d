"""The job repository's edges: a busy SQLite database, URLs that are not a database (or
carry a password), ids that cannot exist, text a backend cannot store, file modes, and
executions whose process is gone. Each is one line on stderr with its documented exit
code, nothing half-recorded, and never a password in any output."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from baton import BatchStatus, ExitCode, JobRepository
from baton.core.entities import JobExecution
from baton.core.errors import DatabaseUnavailable, InvalidParameters, NoSuchExecution
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.executors.owner import this_owner
from baton.repository import redact
from conftest import baton
from conftest import baton_in_process as cli
from sqlalchemy import text

pytestmark = pytest.mark.slow

SECRET = "s3cret"
NOOP_JOB = """\
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: {name}}}
spec:
  parameters: {parameters}
  steps:
{steps}
"""


def write_job(folder: Path, name: str, steps: str, parameters: str = "[]") -> str:
    path = folder / f"{name}.yaml"
    path.write_text(
        NOOP_JOB.format(
            name=name, parameters=parameters, steps=textwrap.indent(textwrap.dedent(steps), "    ")
        )
    )
    return str(path)


def one_line(r: subprocess.CompletedProcess[str], code: int, needle: str) -> str:
    """Exactly one line on stderr, ``error: ...`` holding ``needle``, and ``code``."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert needle in lines[0], lines[0]
    assert r.returncode == code, (r.returncode, r.stderr)
    assert SECRET not in r.stdout + r.stderr
    return lines[0]


def count_executions(db: str) -> int:
    repo = JobRepository(db)
    try:
        with repo.engine.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM baton_job_execution")).scalar_one())
    finally:
        repo.dispose()


def started(repo: JobRepository, name: str, owner: str | None, **params: str) -> JobExecution:
    """A STARTED execution of a one-step job, owned by ``owner`` (host:pid:ticks)."""
    spec = {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": name},
        "spec": {"steps": [{"name": "noop", "tasklet": "os:getcwd"}]},
    }
    bound = JobParameters(
        tuple(JobParameter(k, ParamType.STRING, v, True) for k, v in params.items())
    )
    e = repo.launch(name, spec, bound, prevent_restart=False, source_dir=None, owner=owner)
    return repo.transition(
        e.id,
        BatchStatus.STARTED,
        action="start",
        start=True,
        owner=owner,
    )


def dead_owner() -> str:
    """host:pid:ticks of a process of this host that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return f"{socket.gethostname()}:{int(done.stdout)}:1"


@contextmanager
def write_lock(sqlite_url: str) -> Iterator[None]:
    """Another process's view: a raw connection holding SQLite's write lock."""
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# ---------------------------------------------------------------- a busy database


def test_a_busy_database_is_exit_6_and_stop_gets_through_once_free(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A process holding the write lock made `baton stop` die after 60 s with a traceback
    ("database is locked", exit 1). Now it waits BATON_DB_BUSY_TIMEOUT (interactive
    commands: 10 s by default) and ends with one line and exit 6; reads still work, a
    launch is refused the same way with nothing recorded; once the lock is released the
    same stop goes through."""
    job = write_job(tmp_path, "later", "- {name: noop, tasklet: 'builtins:id'}\n")
    repo = JobRepository(sqlite_url)
    e = started(repo, "busy", this_owner())
    repo.dispose()
    quick = {"BATON_DB_BUSY_TIMEOUT": "0.5"}
    with write_lock(sqlite_url):
        stop = baton("stop", str(e.id), db=sqlite_url, env=quick, timeout=40)
        one_line(stop, ExitCode.DATABASE, "database is busy: sqlite:///")
        assert "another process has held its write lock for more than 0.5s" in stop.stderr
        listing = baton("executions", "--json", db=sqlite_url, env=quick, timeout=40)
        assert listing.returncode == 0, listing.stderr
        run = baton("run", job, "--no-progress", db=sqlite_url, env=quick, timeout=40)
        one_line(run, ExitCode.DATABASE, "database is busy")
    assert count_executions(sqlite_url) == 1
    stop = baton("stop", str(e.id), db=sqlite_url, env=quick, timeout=40)
    assert stop.returncode == 0, stop.stderr
    repo = JobRepository(sqlite_url)
    try:
        assert repo.get_execution(e.id).status is BatchStatus.STOPPING
    finally:
        repo.dispose()


def test_a_bad_busy_timeout_setting_is_one_line(sqlite_url: str) -> None:
    r = baton("jobs", db=sqlite_url, env={"BATON_DB_BUSY_TIMEOUT": "soon"})
    one_line(r, ExitCode.INVALID, "BATON_DB_BUSY_TIMEOUT: expected a number of seconds")


# ---------------------------------------------------------------- URLs and passwords


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (
            f"postgresql://baton:{SECRET}@h:notaport/db",
            "not a database URL: 'postgresql+psycopg://baton:***@h:notaport/db': "
            "the port is not a number",
        ),
        (f"postgresql://baton:{SECRET}@[::1", "the port is not a number"),
        (f"baton:{SECRET}@host/db", "not a database URL: 'baton:***@host/db'"),
        (
            f"postgresql+asyncpg://baton:{SECRET}@h/db",
            "unsupported database driver 'postgresql+asyncpg'",
        ),
        (f"mysql://baton:{SECRET}@h/db", "unsupported database 'mysql'"),
        (
            f"postgresql://baton:{SECRET}@127.0.0.1:1/db",
            "cannot reach database postgresql+psycopg://baton:***@127.0.0.1:1/db",
        ),
        ("sqlite:///:memory:", "sqlite:///:memory: cannot hold a job repository"),
        ("sqlite://", "cannot hold a job repository"),
    ],
)
def test_a_url_that_is_not_a_repository_is_one_line_without_its_password(
    url: str, needle: str
) -> None:
    """A malformed --db echoed its password, a bad port or an uninstalled driver was a
    traceback, and an in-memory SQLite repository 'worked' and forgot everything."""
    one_line(cli("executions", db=url), ExitCode.DATABASE, needle)


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    """--db sqlite:////etc/passwd was a traceback, after creating /etc/passwd.lock."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    r = cli("executions", db=f"sqlite:///{passwd}")
    one_line(r, ExitCode.DATABASE, f"cannot use {passwd} as a job repository: it is not a SQLite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]
    assert passwd.read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_redact_hides_every_password() -> None:
    assert redact("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redact("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"  # unencoded @
    assert redact("error: 'u:pw@h:x/db' and host=h password=pw") == (
        "error: 'u:***@h:x/db' and host=h password=***"
    )
    assert redact("postgresql://u@h:5432/db") == "postgresql://u@h:5432/db"
    assert redact("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_a_password_in_component_args_is_never_stored(db_url: str, tmp_path: Path) -> None:
    """A password in writerArgs.url was stored in plain text in the job snapshot. Step
    processes (and pods) read their definition from that snapshot, so it cannot be
    redacted there: the launch is refused (exit 5, nothing recorded) and the message
    says where the password goes instead."""
    job = write_job(
        tmp_path,
        "leaky",
        f"""\
        - name: copy
          chunk:
            reader: 'baton:SqlReader'
            readerArgs: {{table: src}}
            writer: 'baton:SqlWriter'
            writerArgs: {{table: dst, url: 'postgresql://loader:{SECRET}@db.example/warehouse'}}
        """,
    )
    line = one_line(
        cli("run", job, "--no-progress", db=db_url),
        ExitCode.INVALID,
        "spec.steps[0].chunk.writerArgs.url holds a URL with a password",
    )
    assert "PGPASSWORD" in line
    assert count_executions(db_url) == 0


# ---------------------------------------------------------------- ids and text


def test_ids_that_cannot_exist_are_not_found(db_url: str) -> None:
    """`baton show 999999999999999999999999999999` was an OverflowError traceback
    (SQLite) or a DataError (PostgreSQL)."""
    huge = "9" * 30
    for args in (
        ("show", huge),
        ("restart", huge),
        ("stop", huge),
        ("abandon", huge),
        ("recover", huge),
        ("skips", huge),
        ("steps", huge),
        ("results", huge),
        ("show", "--", "-3"),
        ("recover", "--", "-3"),
    ):
        one_line(cli(*args, db=db_url), ExitCode.INVALID, "no job execution with id")
    repo = JobRepository(db_url)
    try:
        for bad in (10**30, -1, 0, 2**63):
            with pytest.raises(NoSuchExecution, match=f"no job execution with id {bad}"):
                repo.get_execution(bad)
            assert repo.step_executions(bad) == [] and repo.skipped_items(bad) == []
        with pytest.raises(NoSuchExecution, match="no step execution with id 7"):
            repo.get_step(7)
    finally:
        repo.dispose()


def test_parameters_a_backend_cannot_store_are_refused_before_anything(
    db_url: str, tmp_path: Path
) -> None:
    """A NUL in a parameter's name or value (PostgreSQL: DataError traceback, after the
    instance row was written) or a lone surrogate: exit 5, nothing recorded."""
    job = write_job(
        tmp_path,
        "nul",
        "- {name: noop, tasklet: 'os:getcwd'}\n",
        parameters='[{name: note, type: string, default: "a\\0b"}]',
    )
    one_line(
        cli("run", job, "--no-progress", db=db_url),
        ExitCode.INVALID,
        "contains a NUL character",
    )
    repo = JobRepository(db_url)
    try:
        for param, needle in (
            (JobParameter("n\x00", ParamType.STRING, "x"), "its name contains a NUL"),
            (JobParameter("n", ParamType.STRING, "a\udcff"), "a lone surrogate"),
        ):
            with pytest.raises(InvalidParameters, match=needle):
                repo.launch(
                    "nul",
                    {"metadata": {"name": "nul"}},
                    JobParameters((param,)),
                    prevent_restart=False,
                    source_dir=None,
                    owner=None,
                )
        # exit descriptions and skip errors with such text are stored escaped
        e = started(repo, "texts", None)
        failed = repo.end_orphaned(e, BatchStatus.FAILED, "bad \x00 byte \udcff", "fail")
        assert failed.exit_description == "bad \\x00 byte \\udcff"
    finally:
        repo.dispose()
    assert count_executions(db_url) == 1


# ---------------------------------------------------------------- files


def test_sqlite_repository_files_are_private(tmp_path: Path) -> None:
    """The database, its -wal and -shm, and the migration lock file are created 0600
    whatever the umask: the repository holds job parameters and contexts."""
    old = os.umask(0o022)
    try:
        repo = JobRepository(f"sqlite:///{tmp_path / 'private.db'}")
        with repo.engine.connect() as c:  # an open connection keeps -wal and -shm
            c.execute(text("SELECT 1"))
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        repo.dispose()
    finally:
        os.umask(old)
    assert modes == {
        "private.db": 0o600,
        "private.db-wal": 0o600,
        "private.db-shm": 0o600,
        "private.db.lock": 0o600,
    }


# ---------------------------------------------------------------- processes gone


def test_a_listing_recovers_executions_whose_process_is_gone(db_url: str) -> None:
    """`executions --running` listed an execution whose process had died as running
    until someone recovered it by hand. The listing recovers it (FAILED, as restart
    does) when its process ran on this host; others keep their status, marked with
    whether their process is known to be alive."""
    repo = JobRepository(db_url)
    try:
        gone = started(repo, "job", dead_owner(), day="1")
        alive = started(repo, "job", this_owner(), day="2")
        elsewhere = started(repo, "job", "another-host:42:1", day="3")
    finally:
        repo.dispose()
    r = cli("executions", "--running", "--json", db=db_url)
    assert r.returncode == 0, r.stderr
    rows = {row["id"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {alive.id, elsewhere.id}
    assert rows[alive.id]["processGone"] is False and rows[elsewhere.id]["processGone"] is None
    assert rows[alive.id]["status"] == "STARTED"
    assert f"execution {gone.id} was left running by a process that is gone" in r.stderr
    repo = JobRepository(db_url)
    try:
        recovered = repo.get_execution(gone.id)
        assert recovered.status is BatchStatus.FAILED
        assert "the process running it was gone" in recovered.exit_description
    finally:
        repo.dispose()


def test_a_listing_on_a_busy_database_marks_the_process_gone(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the recovery cannot be written (the database is busy) the listing still
    answers, showing the execution as STARTED (process gone)."""
    repo = JobRepository(sqlite_url)
    try:
        gone = started(repo, "job", dead_owner())
    finally:
        repo.dispose()
    monkeypatch.setenv("BATON_DB_BUSY_TIMEOUT", "0.2")
    with write_lock(sqlite_url):
        table = cli("executions", "--running", db=sqlite_url)
        as_json = cli("executions", "--running", "--json", db=sqlite_url)
    assert table.returncode == 0, table.stderr
    assert "STARTED (process gone)" in table.stdout
    assert as_json.returncode == 0, as_json.stderr
    (row,) = json.loads(as_json.stdout)
    assert row["status"] == "STARTED" and row["processGone"] is True
    repo = JobRepository(sqlite_url)
    try:
        assert repo.get_execution(gone.id).status is BatchStatus.STARTED
    finally:
        repo.dispose()
    after = cli("executions", "--running", "--json", db=sqlite_url)  # free again: recovered
    assert json.loads(after.stdout) == [] and "recovered as FAILED" in after.stderr


def test_database_unavailable_is_the_parent_of_busy() -> None:
    """Whoever catches DatabaseUnavailable (exit 6) catches a busy database too."""
    from baton.core.errors import DatabaseBusy

    assert issubclass(DatabaseBusy, DatabaseUnavailable)
    assert DatabaseBusy("x").exit_code == ExitCode.DATABASE
