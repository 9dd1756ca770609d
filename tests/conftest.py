"""Fixtures: a fresh job repository on SQLite and, where BATON_TEST_PG_URL points at a
real server (``make test`` starts one), on PostgreSQL; helpers to run the CLI."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import ModuleType

import pytest
from baton.repository import JobRepository, normalize_url
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(__file__).resolve().parent / "jobs"


def load_bench(name: str) -> ModuleType:
    """A bench/ script as a module, registered under its own name (so its `module:attr`
    references resolve) with bench/ importable, as when it runs as a script."""
    path = ROOT / "bench" / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


PG_URL = os.environ.get("BATON_TEST_PG_URL")

if os.environ.get("CI") and not PG_URL:
    raise RuntimeError("CI needs BATON_TEST_PG_URL: run the tests with `make test`")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="BATON_TEST_PG_URL not set (use make test)"),
        ],
    ),
]


def _fresh_pg_database() -> tuple[str, str]:
    assert PG_URL
    base = normalize_url(PG_URL)
    name = f"baton_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, name


def _drop_pg_database(name: str) -> None:
    assert PG_URL
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'baton.db'}"
        return
    url, name = _fresh_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'baton.db'}"


@pytest.fixture
def repo(db_url: str) -> Iterator[JobRepository]:
    r = JobRepository(db_url)
    yield r
    r.dispose()


@pytest.fixture(autouse=True)
def _jobs_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test job code (tests/jobs) importable in-process, and in step subprocesses."""
    monkeypatch.syspath_prepend(str(JOBS))
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join([str(JOBS), str(ROOT / "runtime"), os.environ.get("PYTHONPATH", "")]),
    )


@pytest.fixture(autouse=True)
def _unit_logs_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Local runs keep their units' output under the test's tmp_path, never in the
    checkout (the default for a PostgreSQL repository is ./.baton/logs)."""
    monkeypatch.setenv("BATON_LOG_DIR", str(tmp_path / "unit-logs"))


def baton(
    *args: str,
    db: str,
    cwd: Path | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `baton` CLI in a subprocess."""
    full_env = dict(os.environ, BATON_DB_URL=db, COLUMNS="200", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "baton", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def baton_in_process(*args: str, db: str | None) -> subprocess.CompletedProcess[str]:
    """The CLI in this process, as the console script runs it (``baton.cli.main`` with
    ``sys.argv``, ``db`` as BATON_DB_URL): fast, and anything escaping it is recorded as
    the traceback a user would see."""
    from baton import cli

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, os.environ.get("BATON_DB_URL")
    sys.argv = ["baton", *args]
    if db is not None:
        os.environ["BATON_DB_URL"] = db
    code: int = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:
        err.write(traceback.format_exc())
        code = -1
    finally:
        sys.argv = saved[0]
        if saved[1] is None:
            os.environ.pop("BATON_DB_URL", None)
        else:
            os.environ["BATON_DB_URL"] = saved[1]
    return subprocess.CompletedProcess(["baton", *args], code, out.getvalue(), err.getvalue())


def out_rows(db: str) -> tuple[int, int, int]:
    """(rows, distinct values, max value) of the test writer's table."""
    repo = JobRepository(db)
    with repo.engine.connect() as c:
        row = c.execute(text("SELECT count(*), count(DISTINCT n), coalesce(max(n), 0) FROM out"))
        result = tuple(row.one())
    repo.dispose()
    return result  # type: ignore[return-value]


def wait_for_commits(db: str, execution_id: int, commits: int, timeout: float = 60) -> None:
    repo = JobRepository(db)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if any(s.commit_count >= commits for s in repo.step_executions(execution_id)):
                    return
            except Exception:
                pass
            time.sleep(0.05)
    finally:
        repo.dispose()
    raise AssertionError(f"execution {execution_id} made no {commits} commits in {timeout}s")


def launch_background(
    db: str, *args: str, env: dict[str, str], manifest: Path = JOBS / "numbers.yaml"
) -> tuple[subprocess.Popen[str], int]:
    """`baton run` of tests/jobs/numbers.yaml (or ``manifest``) in the background, once
    it printed its id."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", str(manifest), "--no-progress", *args],
        cwd=ROOT,
        env=dict(os.environ, BATON_DB_URL=db, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "Execution N of job numbers ..." comes before the work
    assert first.startswith("Execution "), first + (proc.stderr.read() if proc.stderr else "")
    return proc, int(first.split()[1])
