"""The real `baton` command line in subprocesses: stop from another process, SIGTERM,
and exactly-once output across `kill -9` and a unit ended by someone else."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from baton import BatchStatus, ExitCode, JobRepository
from conftest import baton, launch_background, out_rows, wait_for_commits

pytestmark = pytest.mark.slow


def test_stop_from_another_process_then_restart(db_url: str) -> None:
    # 3000 items at 4 ms is ~12 s of work: the stop (a second CLI process) lands
    # mid-step even on a loaded machine, where 600 items once finished first.
    proc, eid = launch_background(db_url, "-p", "count=3000", env={"BATON_TEST_SLEEP": "0.004"})
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
    assert 0 < written < 3000 and written % 10 == 0
    assert out_rows(db_url) == (written, written, written)

    r = baton("restart", str(eid), "--no-progress", db=db_url)
    assert r.returncode == 0, r.stderr
    assert out_rows(db_url) == (3000, 3000, 3000)


def test_sigterm_to_run_stops_at_a_chunk_boundary(sqlite_url: str) -> None:
    proc, eid = launch_background(sqlite_url, "-p", "count=3000", env={"BATON_TEST_SLEEP": "0.004"})
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
