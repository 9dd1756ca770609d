"""The real `baton` command line in subprocesses: exit codes, JSON contracts, stop from
another process, and exactly-once output across `kill -9`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from baton import BatchStatus, ExitCode, JobRepository
from conftest import ROOT, baton
from sqlalchemy import text

NUMBERS = str(Path(__file__).resolve().parent / "jobs" / "numbers.yaml")
pytestmark = pytest.mark.slow


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
    db: str, *args: str, env: dict[str, str]
) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", NUMBERS, "--no-progress", *args],
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


def test_run_show_and_listings_json(db_url: str) -> None:
    r = baton("run", NUMBERS, "-p", "count=25", "--no-progress", db=db_url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Execution 1 of job numbers")
    shown = json.loads(baton("show", "1", "--json", db=db_url).stdout)
    assert {"id", "instanceId", "job", "status", "exitDescription", "parameters", "steps"} <= set(
        shown
    )
    assert (shown["id"], shown["job"], shown["status"]) == (1, "numbers", "COMPLETED")
    assert shown["parameters"] == {"count": 25, "note": "-"}
    load = next(s for s in shown["steps"] if s["name"] == "load")
    assert {
        k: load[k]
        for k in (
            "name",
            "partition",
            "status",
            "readCount",
            "writeCount",
            "filterCount",
            "skipCount",
            "commitCount",
            "rollbackCount",
        )
    } == {
        "name": "load",
        "partition": None,
        "status": "COMPLETED",
        "readCount": 25,
        "writeCount": 25,
        "filterCount": 0,
        "skipCount": 0,
        "commitCount": 3,
        "rollbackCount": 0,
    }
    jobs = json.loads(baton("jobs", "--json", db=db_url).stdout)
    assert jobs == [
        {
            "job": "numbers",
            "instances": 1,
            "executions": 1,
            "lastExecutionId": 1,
            "lastStatus": "COMPLETED",
        }
    ]
    inst = json.loads(baton("instances", "numbers", "--json", db=db_url).stdout)
    assert [i["id"] for i in inst] == [shown["instanceId"]]
    execs = json.loads(baton("executions", "--job", "numbers", "--json", db=db_url).stdout)
    assert [(e["id"], e["status"]) for e in execs] == [(1, "COMPLETED")]
    assert json.loads(baton("executions", "--running", "--json", db=db_url).stdout) == []
    assert json.loads(baton("skips", "1", "--json", db=db_url).stdout) == []
    human = baton("show", "1", db=db_url)
    assert human.returncode == 0 and "COMPLETED" in human.stdout


def test_exit_codes_and_one_line_errors(sqlite_url: str, tmp_path: Path) -> None:
    db = sqlite_url

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return baton(*args, db=db, env=env)

    ok = run("run", NUMBERS, "-p", "count=5", "--no-progress")
    assert ok.returncode == ExitCode.COMPLETED, ok.stderr

    cases = [
        (
            ("run", NUMBERS, "-p", "count=5", "--no-progress"),
            ExitCode.REJECTED,
            "JobInstanceAlreadyComplete",
        ),
        (("run", NUMBERS, "--no-progress"), ExitCode.INVALID, "missing required parameter 'count'"),
        (
            ("run", NUMBERS, "-p", "count=many"),
            ExitCode.INVALID,
            "parameter 'count': expected an integer",
        ),
        (
            ("run", NUMBERS, "-p", "count=1", "-p", "colour=red"),
            ExitCode.INVALID,
            "unknown parameter(s) colour",
        ),
        (
            ("run", NUMBERS, "-p", "count=1", "--job", "nope"),
            ExitCode.INVALID,
            "unknown job 'nope'; known jobs: numbers",
        ),
        (("run", str(tmp_path / "missing.yaml")), ExitCode.INVALID, "no such manifest"),
        (("show", "999"), ExitCode.INVALID, "no job execution with id 999"),
        (("stop", "1"), ExitCode.WRONG_STATE, "cannot stop execution 1: it is COMPLETED"),
        (("abandon", "1"), ExitCode.WRONG_STATE, "cannot abandon execution 1: it is COMPLETED"),
        (("restart", "1"), ExitCode.REJECTED, "JobInstanceAlreadyComplete"),
        (("instances", "nope"), ExitCode.INVALID, "no job named 'nope'"),
    ]
    for args, code, needle in cases:
        r = run(*args)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
        assert needle in lines[0], (args, lines[0])

    bad_ref = tmp_path / "badref.yaml"
    bad_ref.write_text(Path(NUMBERS).read_text().replace("testjobs:prepare", "testjobs:nope"))
    r = run("run", str(bad_ref), "-p", "count=3")
    assert r.returncode == ExitCode.INVALID
    assert "cannot import 'testjobs:nope': testjobs has no 'nope'" in r.stderr
    bad_module = tmp_path / "badmod.yaml"
    bad_module.write_text(Path(NUMBERS).read_text().replace("testjobs:prepare", "nomod.x:f"))
    r = run("run", str(bad_module), "-p", "count=3")
    assert r.returncode == ExitCode.INVALID and "No module named 'nomod'" in r.stderr

    failed = run(
        "run", NUMBERS, "-p", "count=6", "--no-progress", env={"BATON_TEST_TASKLET_FAIL": "1"}
    )
    assert failed.returncode == ExitCode.FAILED
    assert "tasklet failure" in failed.stdout

    # nothing half-recorded by the refused launches: two instances, two executions
    jobs = json.loads(run("jobs", "--json").stdout)
    assert (jobs[0]["instances"], jobs[0]["executions"]) == (2, 2)

    r = baton("jobs", db="postgresql://nobody:pw@127.0.0.1:1/none")
    assert r.returncode == ExitCode.DATABASE
    assert r.stderr.startswith("error: cannot reach database postgresql+psycopg://nobody:***@")
    assert "pw" not in r.stderr


def test_stop_from_another_process_then_restart(db_url: str) -> None:
    proc, eid = launch_background(db_url, "-p", "count=600", env={"BATON_TEST_SLEEP": "0.004"})
    try:
        wait_for_commits(db_url, eid, 3)
        stop = baton("stop", str(eid), db=db_url)
        assert stop.returncode == 0, stop.stderr
        assert "STOPPING" in stop.stdout
        assert proc.wait(60) == ExitCode.STOPPED
    finally:
        proc.kill()
    shown = json.loads(baton("show", str(eid), "--json", db=db_url).stdout)
    assert shown["status"] == "STOPPED"
    written = next(s["writeCount"] for s in shown["steps"] if s["name"] == "load")
    assert 0 < written < 600 and written % 10 == 0
    assert out_rows(db_url) == (written, written, written)

    r = baton("restart", str(eid), "--no-progress", db=db_url)
    assert r.returncode == 0, r.stderr
    assert out_rows(db_url) == (600, 600, 600)


def test_sigterm_to_run_stops_at_a_chunk_boundary(sqlite_url: str) -> None:
    proc, eid = launch_background(sqlite_url, "-p", "count=600", env={"BATON_TEST_SLEEP": "0.004"})
    wait_for_commits(sqlite_url, eid, 2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == ExitCode.STOPPED
    repo = JobRepository(sqlite_url)
    assert repo.get_execution(eid).status is BatchStatus.STOPPED
    rows, distinct, _ = out_rows(sqlite_url)
    assert rows == distinct and rows % 10 == 0


def test_kill_9_then_restart_writes_every_row_exactly_once(db_url: str) -> None:
    proc, eid = launch_background(db_url, "-p", "count=3000", env={"BATON_TEST_SLEEP": "0.001"})
    wait_for_commits(db_url, eid, 5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.5)  # the step process dies with its parent (PDEATHSIG)
    repo = JobRepository(db_url)
    assert repo.get_execution(eid).status is BatchStatus.STARTED  # left behind, as after a crash
    rows, distinct, _ = out_rows(db_url)
    assert rows == distinct and rows % 10 == 0  # only whole chunks, none doubled
    restarted = baton("restart", str(eid), "--no-progress", "--json", db=db_url)
    assert restarted.returncode == 0, restarted.stderr
    summary = json.loads(restarted.stdout)
    assert summary["status"] == "COMPLETED"
    assert repo.get_execution(eid).status is BatchStatus.FAILED  # recovered, then restarted
    load = next(s for s in summary["steps"] if s["name"] == "load")
    assert load["readCount"] == 3000 - rows  # resumed from the last checkpoint
    assert out_rows(db_url) == (3000, 3000, 3000)
    repo.dispose()


def test_a_unit_ended_by_someone_else_commits_nothing_more(db_url: str) -> None:
    """The operator declares a unit lost (or `recover --force` runs) while its process
    is in fact alive: its next checkpoint is refused, so nothing it writes after that
    lands, and a restart writes every row exactly once."""
    proc, eid = launch_background(db_url, "-p", "count=3000", env={"BATON_TEST_SLEEP": "0.002"})
    wait_for_commits(db_url, eid, 3)
    repo = JobRepository(db_url)
    load = next(s for s in repo.step_executions(eid) if s.step_name == "load")
    assert repo.finish_step(
        load, BatchStatus.FAILED, description="declared lost", only_running=True
    )
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.FAILED, stderr
    assert "was ended by someone else" in stderr
    ended = next(s for s in repo.step_executions(eid) if s.step_name == "load")
    assert (ended.status, ended.exit_description) == (BatchStatus.FAILED, "declared lost")
    rows, distinct, _ = out_rows(db_url)
    assert rows == distinct == ended.write_count  # nothing after the fence
    restarted = baton("restart", str(eid), "--no-progress", "--json", db=db_url)
    assert restarted.returncode == 0, restarted.stderr
    assert out_rows(db_url) == (3000, 3000, 3000)
    repo.dispose()
