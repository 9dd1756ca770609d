"""A PostgreSQL failover does not fail the job: `baton run` rides out a server restart
and an outage (within BATON_DB_RETRY_SECONDS) and completes with every row and record
exactly once; past the budget it exits 6 and the execution ends FAILED, restartable.

The server is a private one started by the fixture (never the shared test server), so
it can be restarted and stopped at will."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import baton
import pytest
from baton import BatchStatus, DatabaseUnavailable, ExitCode, JobRepository
from baton.repository.retry import Retrier, backoff, retry_budget
from conftest import JOBS, ROOT
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

RUNTIME = Path(baton.__file__).resolve().parents[1]  # the code under test, in subprocesses too
NUMBERS = str(JOBS / "numbers.yaml")
COUNT = 1000


# ---------------------------------------------------------------- the retry schedule


@given(budget=st.floats(0, 1000), first=st.floats(0.01, 5), cap=st.floats(5, 60))
def test_backoff_doubles_up_to_the_cap_and_adds_up_to_the_budget(
    budget: float, first: float, cap: float
) -> None:
    waits = list(backoff(budget, first, cap))
    assert sum(waits) == pytest.approx(budget)
    assert all(0 < w <= cap for w in waits)
    full = waits[:-1]  # the last one may be cut to fit the budget
    assert full == sorted(full)
    assert all(b in (2 * a, cap) for a, b in itertools.pairwise(full))


def test_backoff_schedule_of_the_default_budget() -> None:
    assert list(backoff(20)) == [0.5, 1, 2, 4, 8, 4.5]
    assert list(backoff(120))[5:9] == [10, 10, 10, 10]
    assert list(backoff(0)) == []


def test_retrier_retries_connection_errors_only_and_gives_up_naming_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    calls = iter([DatabaseUnavailable("cannot reach database x: gone"), None])

    def flaky() -> str:
        error = next(calls)
        if error is not None:
            raise error
        return "ok"

    assert Retrier("test", budget=5, sleep=slept.append)(flaky) == "ok"
    assert slept == [0.5]

    def down() -> None:
        raise DatabaseUnavailable("cannot reach database x: gone")

    with pytest.raises(DatabaseUnavailable, match=r"gone \(gave up after 2s; BATON_DB_RETRY"):
        Retrier("test", budget=2, sleep=slept.append)(down)

    def wrong() -> None:
        raise ValueError("not a connection problem")

    with pytest.raises(ValueError):
        Retrier("test", budget=5, sleep=slept.append)(wrong)
    monkeypatch.setenv("BATON_DB_RETRY_SECONDS", "7")
    assert retry_budget() == 7
    monkeypatch.setenv("BATON_DB_RETRY_SECONDS", "soon")
    assert retry_budget() == 120


# ---------------------------------------------------------------- a private server


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivatePostgres:
    bin: Path
    dir: Path
    port: int

    def _ctl(self, *args: str, check: bool = True) -> int:
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), *args]
        if os.getuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # No pipes: the server started by pg_ctl would inherit them and keep them open.
        done = subprocess.run(
            cmd, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return done.returncode

    def ensure_running(self) -> None:
        if self._ctl("status", check=False) != 0:
            self.start()

    def _server(self) -> list[str]:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        return ["-l", str(self.dir / "server.log"), "-w", "-t", "60", "-o", opts]

    def start(self) -> None:
        self._ctl(*self._server(), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server comes back."""
        self._ctl(*self._server(), "-m", "fast", "restart")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this module's own, on a free port, in a temporary folder."""
    binaries = _pg_bin()
    if binaries is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found (scripts/postgres.sh installs them)"
        )
    folder = Path(tempfile.mkdtemp(prefix="baton-failover-"))
    if os.getuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    initdb = [str(binaries / "initdb"), "-D", str(folder / "data"), "-U", "postgres"]
    initdb += ["--auth=trust", "-E", "UTF8"]
    if os.getuid() == 0:
        initdb = ["runuser", "-u", "postgres", "--", *initdb]
    subprocess.run(initdb, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = PrivatePostgres(binaries, folder, _free_port())
    server.start()
    try:
        yield server
    finally:
        server._ctl("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _server_up(pg: PrivatePostgres) -> Iterator[None]:
    """Each test starts with the server up and leaves it up, whatever happened."""
    pg.ensure_running()
    yield
    pg.ensure_running()


def env(db: str, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(JOBS), str(RUNTIME), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, BATON_DB_URL=db, PYTHONPATH=path, **extra)


def launch(db: str, *args: str, **extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", *args, "--no-progress"],
        cwd=ROOT,
        env=env(db, **{"BATON_TEST_SLEEP": "0.002", **extra}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("Execution "), first + (proc.stderr.read() if proc.stderr else "")
    return proc, int(first.split()[1])


def wait_for_commits(db: str, execution_id: int, commits: int) -> None:
    repo = JobRepository(db)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(s.commit_count >= commits for s in repo.step_executions(execution_id)):
                return
            time.sleep(0.05)
    finally:
        repo.dispose()
    raise AssertionError(f"execution {execution_id}: no {commits} commits in 60s")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rows(db: str) -> list[int]:
    engine = create_engine(db)
    with engine.connect() as c:
        found = sorted(c.execute(text("SELECT n FROM out")).scalars())
    engine.dispose()
    return found


def status(db: str, execution_id: int) -> BatchStatus:
    repo = JobRepository(db)
    try:
        return repo.get_execution(execution_id).status
    finally:
        repo.dispose()


def restarted_mid_run(db: str, execution_id: int) -> tuple[bool, str]:
    """The server started (``pg_ctl restart``) while the execution ran: a step may
    ride a short restart out without a visible retry (pool pre-ping reconnects), and
    the executor no longer polls the repository, so no log line proves it."""
    repo = JobRepository(db)
    try:
        e = repo.get_execution(execution_id)
        with repo.engine.connect() as conn:
            started = conn.execute(text("SELECT pg_postmaster_start_time()")).scalar_one()
    finally:
        repo.dispose()
    assert e.start_time is not None and e.end_time is not None
    return e.start_time < started < e.end_time, f"{e.start_time} < {started} < {e.end_time}"


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, stderr


OUTAGE_SECONDS = 30


@pytest.mark.slow
@pytest.mark.postgres
def test_an_outage_mid_run_is_ridden_out(pg: PrivatePostgres) -> None:
    db = pg.new_database("outage_sql")
    proc, eid = launch(db, NUMBERS, "-p", f"count={COUNT}", BATON_DB_RETRY_SECONDS="60")
    wait_for_commits(db, eid, 5)
    pg.stop()
    time.sleep(OUTAGE_SECONDS)  # as long as a managed PostgreSQL failover takes
    assert proc.poll() is None  # still waiting for the database
    pg.start()
    code, stderr = finish(proc)
    assert code == ExitCode.COMPLETED, stderr
    assert status(db, eid) is BatchStatus.COMPLETED
    assert rows(db) == list(range(1, COUNT + 1))


@pytest.mark.slow
@pytest.mark.postgres
def test_past_the_budget_the_run_exits_6_and_the_execution_ends_failed(
    pg: PrivatePostgres,
) -> None:
    db = pg.new_database("giveup_sql")
    proc, eid = launch(db, NUMBERS, "-p", f"count={COUNT}", BATON_DB_RETRY_SECONDS="3")
    wait_for_commits(db, eid, 5)
    (step,) = children(proc.pid)
    pg.stop()
    deadline = time.monotonic() + 60
    while step in children(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # the step process gives up after its budget
    assert step not in children(proc.pid)
    pg.start()  # back while `baton run` still tries to record the outcome
    code, stderr = finish(proc)
    assert code == ExitCode.DATABASE, stderr
    assert stderr.splitlines()[-1].startswith(f"error: execution {eid} FAILED: ")
    assert status(db, eid) is BatchStatus.FAILED
    partial = rows(db)
    assert partial == list(range(1, len(partial) + 1))
    restarted = subprocess.run(
        [sys.executable, "-m", "baton", "restart", str(eid), "--no-progress"],
        cwd=ROOT,
        env=env(db),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr
    assert rows(db) == list(range(1, COUNT + 1))


def file_job(tmp_path: Path, out: Path) -> str:
    """The numbers job with a JSON-lines file as its only output."""
    manifest = tmp_path / "file.yaml"
    job = {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "file"},
        "spec": {
            "parameters": [{"name": "count", "type": "int", "identifying": True}],
            "steps": [
                {
                    "name": "load",
                    "chunk": {
                        "reader": "testjobs:NumbersReader",
                        "processor": "testjobs:process",
                        "writer": "baton.items:JsonLinesWriter",
                        "writerArgs": {"path": str(out)},
                        "size": 10,
                    },
                }
            ],
        },
    }
    manifest.write_text(json.dumps(job))
    return str(manifest)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_postgresql_restart_mid_run_completes_exactly_once(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    """Two runs through one `pg_ctl restart -m fast`: the SQL writer's rows (in the
    checkpoint transaction) and a JSON-lines file (staged, appended after the fence)."""
    sql_db, file_db = pg.new_database("restart_sql"), pg.new_database("restart_file")
    out = tmp_path / "out.jsonl"
    slow = {"BATON_DB_RETRY_SECONDS": "60", "BATON_TEST_SLEEP": "0.02"}  # 20 s: the
    # restart lands mid-run even on a loaded machine
    sql, sql_id = launch(sql_db, NUMBERS, "-p", f"count={COUNT}", **slow)
    to_file, file_id = launch(file_db, file_job(tmp_path, out), "-p", f"count={COUNT}", **slow)
    wait_for_commits(sql_db, sql_id, 5)
    wait_for_commits(file_db, file_id, 5)
    pg.restart()
    for proc, db, eid in ((sql, sql_db, sql_id), (to_file, file_db, file_id)):
        code, stderr = finish(proc)
        assert code == ExitCode.COMPLETED, stderr
        during, times = restarted_mid_run(db, eid)
        assert during, f"the server did not restart during the run: {times}\n{stderr}"
        assert status(db, eid) is BatchStatus.COMPLETED
    assert rows(sql_db) == list(range(1, COUNT + 1))
    numbers = [json.loads(line)["n"] for line in out.read_text().splitlines()]
    assert numbers == list(range(1, COUNT + 1))
