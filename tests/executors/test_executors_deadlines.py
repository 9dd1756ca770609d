"""Deadlines and retry backoff in local runs: a step past its timeoutSeconds and an
execution past ``--deadline`` end FAILED with DeadlineExceeded at a chunk boundary,
their checkpoint kept, and a restart resumes and completes exactly once; retries are
spaced by retryBackoff, and a deadline cuts a backoff short. No timing is asserted
beyond lower bounds on the recorded gaps between retries."""

from __future__ import annotations

import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from baton import BatchStatus, JobOperator, JobRepository
from baton.core.status import DEADLINE_EXCEEDED
from baton.spec.model import BatchJob, RetryBackoff
from conftest import JOBS, baton, out_rows


def job(steps: list[dict[str, Any]], name: str = "timed") -> BatchJob:
    return BatchJob.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "parameters": [{"name": "count", "type": "int"}],
                "steps": steps,
            },
        }
    )


def load(**extra: Any) -> dict[str, Any]:
    chunk = {
        "reader": "testjobs:NumbersReader",
        "processor": "testjobs:process",
        "writer": "testjobs:OutWriter",
        "size": 10,
    }
    chunk.update(extra.pop("chunk", {}))
    return {"name": "load", "chunk": chunk, **extra}


def unit(repo: JobRepository, execution_id: int, name: str) -> Any:
    return next(s for s in repo.step_executions(execution_id) if s.step_name == name)


def test_step_timeout_stops_at_a_chunk_boundary_and_restart_resumes(
    repo: JobRepository, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = JobOperator(repo, in_process=True)
    monkeypatch.setenv("BATON_TEST_SLEEP", "0.03")  # 0.3 s a chunk, 100 items: 3 s
    timed = job([{"name": "prepare", "tasklet": "testjobs:prepare"}, load(timeoutSeconds=1)])
    e = op.start(timed, {"count": 100})
    assert (e.status, e.exit_code) == (BatchStatus.FAILED, DEADLINE_EXCEEDED), e.exit_description
    assert "DeadlineExceeded: step 'load' ran past its timeoutSeconds (1s)" in e.exit_description
    first = unit(repo, e.id, "load")
    assert (first.status, first.exit_code) == (BatchStatus.FAILED, DEADLINE_EXCEEDED)
    assert 0 < first.commit_count < 10 and first.write_count == 10 * first.commit_count
    assert first.context["numbers.pos"] == first.write_count  # the checkpoint kept
    assert out_rows(db_url) == (first.write_count,) * 3  # only committed chunks

    monkeypatch.delenv("BATON_TEST_SLEEP")
    again = op.restart(e.id)  # a fresh timeout for the step
    assert again.status is BatchStatus.COMPLETED, again.exit_description
    assert unit(repo, again.id, "load").read_count == 100 - first.write_count
    assert [s.step_name for s in repo.step_executions(again.id)] == ["load"]  # prepare done
    assert out_rows(db_url) == (100, 100, 100)


def test_tasklet_that_returns_when_asked_fails_and_runs_again(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = JobOperator(repo, in_process=True)
    monkeypatch.setenv("DEADLINE_TEST_SLEEP", "120")
    steps = [{"name": "wait", "tasklet": "deadlinejobs:polite", "timeoutSeconds": 1}]
    e = op.start(job(steps), {"count": 1})
    wait = unit(repo, e.id, "wait")
    assert (e.exit_code, wait.exit_code) == (DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
    assert wait.result is None and "a restart runs it again" in wait.exit_description
    monkeypatch.setenv("DEADLINE_TEST_SLEEP", "0")
    assert op.restart(e.id).status is BatchStatus.COMPLETED


@pytest.mark.slow
def test_tasklet_that_ignores_the_stop_is_killed_after_the_grace_period(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = JobRepository(sqlite_url)
    op = JobOperator(repo)  # real unit processes: the hard stop exits one
    monkeypatch.setenv("DEADLINE_TEST_SLEEP", "300")
    monkeypatch.setenv("BATON_TERMINATION_GRACE_SECONDS", "0.5")
    steps = [{"name": "hang", "tasklet": "deadlinejobs:stubborn", "timeoutSeconds": 1}]
    e = op.start(job(steps), {"count": 1})
    hang = unit(repo, e.id, "hang")
    assert (e.status, e.exit_code) == (BatchStatus.FAILED, DEADLINE_EXCEEDED)
    assert (hang.status, hang.exit_code) == (BatchStatus.FAILED, DEADLINE_EXCEEDED)
    assert "killed 0.5s later (grace period)" in hang.exit_description
    monkeypatch.setenv("DEADLINE_TEST_SLEEP", "0")
    assert op.restart(e.id).status is BatchStatus.COMPLETED
    repo.dispose()


def test_retries_are_spaced_by_the_backoff(
    repo: JobRepository, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = tmp_path / "attempts.log"
    backoff = {"initialSeconds": 0.05, "factor": 2, "maxSeconds": 0.08}
    flaky = load(
        chunk={
            "processor": "deadlinejobs:Flaky",
            "processorArgs": {"failures": 2, "every": 5, "log": str(attempts)},
            "retryLimit": 2,
            "retry": ["testjobs:Transient"],
            "retryBackoff": backoff,
        }
    )
    with caplog.at_level(logging.WARNING, logger="baton.step"):
        e = JobOperator(repo, in_process=True).start(job([flaky]), {"count": 10})
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    assert unit(repo, e.id, "load").write_count == 10
    waits = [r.getMessage().split(" after ")[0] for r in caplog.records if "retry" in r.msg]
    assert waits == ["retry 1 of 2 in 0.05s", "retry 2 of 2 in 0.08s"] * 2  # items 5 and 10
    seen: dict[int, list[float]] = {}
    for line in attempts.read_text().splitlines():
        n, at = line.split()
        seen.setdefault(int(n), []).append(float(at))
    assert {n: len(times) for n, times in seen.items() if len(times) > 1} == {5: 3, 10: 3}
    delays = RetryBackoff.model_validate(backoff)
    for times in (seen[5], seen[10]):
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[0] >= delays.delay(1) and gaps[1] >= delays.delay(2)


def test_a_deadline_cuts_a_retry_backoff_short(repo: JobRepository, db_url: str) -> None:
    # item 3 fails and would wait 10 minutes to be retried: the 1 s timeout ends the
    # wait, the chunk holding it is not committed, and the step ends DeadlineExceeded
    stuck = load(
        timeoutSeconds=1,
        chunk={
            "processor": "deadlinejobs:Flaky",
            "processorArgs": {"failures": 5, "every": 3},
            "retryLimit": 3,
            "retry": ["testjobs:Transient"],
            "retryBackoff": {"initialSeconds": 600},
        },
    )
    e = JobOperator(repo, in_process=True).start(job([stuck]), {"count": 10})
    step = unit(repo, e.id, "load")
    assert (step.status, step.exit_code) == (BatchStatus.FAILED, DEADLINE_EXCEEDED)
    assert (step.commit_count, step.write_count, step.context.get("numbers.pos", 0)) == (0, 0, 0)
    assert out_rows(db_url) == (0, 0, 0)


@pytest.mark.slow
def test_run_deadline_fails_the_execution_then_restart_completes(sqlite_url: str) -> None:
    numbers = str(JOBS / "numbers.yaml")
    slow = {"BATON_TEST_SLEEP": "0.02"}  # 200 items: 4 s of work past a 2 s deadline
    r = baton("run", numbers, "-p", "count=200", "--deadline", "2", "--no-progress",
              db=sqlite_url, env=slow)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "FAILED: DeadlineExceeded: the execution ran past its deadline of 2s" in r.stdout
    shown = json.loads(baton("show", "1", "--json", db=sqlite_url).stdout)
    assert (shown["status"], shown["exitCode"]) == ("FAILED", DEADLINE_EXCEEDED)
    text = baton("show", "1", db=sqlite_url).stdout
    assert "exit: DeadlineExceeded: the execution ran past its deadline of 2s" in text
    # (on a slow machine the deadline may come before the load step)
    written = next((s["writeCount"] for s in shown["steps"] if s["name"] == "load"), 0)
    assert written % 10 == 0 and written < 200  # whole chunks only
    assert written == 0 or out_rows(sqlite_url) == (written,) * 3
    r = baton("restart", "1", "--no-progress", db=sqlite_url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out_rows(sqlite_url) == (200, 200, 200)


@pytest.mark.slow
def test_run_deadline_kills_a_unit_that_does_not_stop(sqlite_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "hang.yaml"
    manifest.write_text(
        "apiVersion: baton.dev/v1alpha1\nkind: BatchJob\nmetadata: {name: hang}\n"
        "spec:\n  steps:\n    - {name: hang, tasklet: 'deadlinejobs:stubborn'}\n"
    )
    env = {"DEADLINE_TEST_SLEEP": "300", "BATON_TERMINATION_GRACE_SECONDS": "0.5"}
    r = baton("run", str(manifest), "--deadline", "3", "--no-progress", db=sqlite_url, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    shown = json.loads(baton("show", "1", "--json", db=sqlite_url).stdout)
    assert (shown["status"], shown["exitCode"]) == ("FAILED", DEADLINE_EXCEEDED)
    [hang] = shown["steps"]
    # SIGKILLed after the grace period (SIGTERM, had it come before the process was up)
    assert hang["status"] == "FAILED", hang
    assert re.search(r"its process ended with exit code -(9|15)\b", hang["exitDescription"])
    r = baton("restart", "1", "--no-progress", db=sqlite_url, env={"DEADLINE_TEST_SLEEP": "0"})
    assert r.returncode == 0, r.stdout + r.stderr
