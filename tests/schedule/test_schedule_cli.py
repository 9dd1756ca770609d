"""``baton schedule run`` and ``baton backfill FILE`` through the real CLI: a backfill
runs each window once (a second one finds them COMPLETED), a failing window's restart
resumes it, SIGINT stops the running window at a chunk boundary (exit 3) and the next
run restarts it; bad input is one line and exit 5."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from baton import BatchStatus, JobRepository
from conftest import ROOT, baton

EXAMPLE = ROOT / "examples" / "windows"
SCHEDULE = str(EXAMPLE / "schedule.yaml")
JOB = str(EXAMPLE / "job.yaml")


def backfill(db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    window = ("--from", "2026-01-01T00:00", "--to", "2026-01-01T00:03")
    return baton("backfill", SCHEDULE, "--job", JOB, *window, *extra, db=db, cwd=EXAMPLE)


def test_backfill_runs_each_window_once(sqlite_url: str) -> None:
    first = backfill(sqlite_url, "--max-running", "2")
    assert first.returncode == 0, first.stderr
    assert "backfill: 4 windows, 4 completed, 0 failed" in first.stdout
    again = backfill(sqlite_url)
    assert again.returncode == 0 and "launched" not in again.stdout, (first.stdout, again.stdout)
    repo = JobRepository(sqlite_url)
    try:
        done = repo.executions(job="window-report")
        assert len(done) == 4, [
            (e.id, e.instance_id, e.attempt, e.status.value, e.parameters["window"].text)
            for e in done
        ]
        assert {e.status for e in done} == {BatchStatus.COMPLETED}
    finally:
        repo.dispose()


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (("--from", "2026-01-02", "--to", "2026-01-01"), "is after to"),
        (("--from", "soon", "--to", "2026-01-01"), "is not an ISO 8601 date or time"),
    ],
)
def test_bad_times_are_one_line_and_exit_5(
    sqlite_url: str, window: tuple[str, ...], message: str
) -> None:
    done = baton("backfill", SCHEDULE, "--job", JOB, *window, db=sqlite_url, cwd=EXAMPLE)
    assert done.returncode == 5 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_schedule_file_without_its_job_is_refused(sqlite_url: str) -> None:
    done = baton("schedule", "run", SCHEDULE, "--once", db=sqlite_url, cwd=EXAMPLE)
    assert done.returncode == 5 and "no BatchJob document" in done.stderr


def test_sigint_stops_the_running_window_and_the_next_run_restarts_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    slow = tmp_path / "schedule.yaml"
    slow.write_text(
        "kind: BatchSchedule\nmetadata: {name: slow}\nspec: {schedule: '0 0 1 1 *', "
        "job: window-report, windowParameter: window, parameters: {items: 400, delayMs: 20}}\n"
    )
    args = ["backfill", str(slow), "--job", JOB, "--from", "2025-01-01", "--to", "2025-01-01"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "baton", *args, "--db", sqlite_url],
        cwd=EXAMPLE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    repo = JobRepository(sqlite_url)
    try:
        while not any(
            s.commit_count for e in repo.executions(job="window-report") for s in
            repo.step_executions(e.id) if e.parameters["window"].text.startswith("2025")
        ):  # fmt: skip
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, (out, err)
        (stopped,) = [
            e for e in repo.executions(job="window-report")
            if e.parameters["window"].text.startswith("2025")
        ]  # fmt: skip
        assert stopped.status is BatchStatus.STOPPED
        again = baton(*args, db=sqlite_url, cwd=EXAMPLE, timeout=120)
        assert again.returncode == 0, again.stderr
        assert "restarted" in again.stdout
    finally:
        repo.dispose()


def test_a_later_run_catches_up_from_the_newest_window_within_the_deadline(
    sqlite_url: str,
) -> None:
    """A window four minutes ago ran; `schedule run --once` now launches the windows
    since then that are inside startingDeadlineSeconds (120) and reports the others
    missed."""
    seeded = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=4)
    at = seeded.strftime("%Y-%m-%dT%H:%M")
    seed = baton("backfill", SCHEDULE, "--job", JOB, "--from", at, "--to", at,
                 db=sqlite_url, cwd=EXAMPLE)  # fmt: skip
    assert seed.returncode == 0, seed.stderr
    once = baton("schedule", "run", SCHEDULE, "--job", JOB, "--once", db=sqlite_url, cwd=EXAMPLE)
    assert once.returncode == 0, once.stderr
    assert "missed" in once.stdout and "launched" in once.stdout, once.stdout
    launched = [line for line in once.stdout.splitlines() if "launched" in line]
    assert 1 <= len(launched) <= 3
