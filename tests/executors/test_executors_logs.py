"""The local executor keeps each unit run's output in a file of its own, and ``baton
logs ID`` prints it prefixed by step[partition], oldest run first; a restart's runs
come after the failed attempt's, ``--attempt`` picks one; ``kill -9`` of a step loses
none of what it printed; ``--log-format json`` makes the steps' log records JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from baton.core.status import ExitCode
from conftest import ROOT, baton

JOB = """
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {name: talkative}
spec:
  parameters:
    - {name: day, type: string, identifying: true}
  steps:
    - name: talk
      partitions: {count: 2}
      tasklet: logjobs:talk
    - name: tally
      chunk: {reader: logjobs:Numbers, processor: logjobs:logged, writer: logjobs:Drop, size: 2}
"""
TALK = ["line 1", "line 2", "line 3", "on stderr", "WARNING logjobs: talked"]
TALLY = [f"WARNING logjobs: item {n}" for n in range(1, 6)]


@pytest.fixture
def manifest(tmp_path: Path) -> str:
    path = tmp_path / "talkative.yaml"
    path.write_text(JOB)
    return str(path)


def lines(r: subprocess.CompletedProcess[str]) -> list[str]:
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_each_units_output_is_kept_and_printed_prefixed_in_run_order(
    manifest: str, db_url: str
) -> None:
    run = baton("run", manifest, "-p", "day=1", "--no-progress", db=db_url)
    assert run.returncode == 0, run.stderr
    assert "line 1" in run.stderr and "line 1" not in run.stdout  # still shown, on stderr
    out = lines(baton("logs", "1", db=db_url))
    expected = [f"talk[{p}] {t}" for p in (0, 1) for t in TALK] + [f"tally {t}" for t in TALLY]
    assert out == expected
    assert lines(baton("logs", "1", "--step", "talk", "--partition", "1", db=db_url)) == [
        f"talk[1] {t}" for t in TALK
    ]
    assert lines(baton("logs", "1", "-f", db=db_url)) == expected  # ended: -f just prints


def test_a_restart_shows_both_attempts_and_attempt_selects_one(manifest: str, db_url: str) -> None:
    failed = baton("run", manifest, "-p", "day=2", "--no-progress", db=db_url,
                   env={"LOGJOBS_FAIL": "1"})  # fmt: skip
    assert failed.returncode == ExitCode.FAILED, failed.stderr
    assert baton("restart", "1", "--no-progress", db=db_url).returncode == 0
    first = [f"talk[0] {t}" for t in TALK] + [f"talk[1] {t}" for t in TALK]
    failure = "talk[1] ERROR baton.step: step talk failed: RuntimeError: partition 1 fails"
    retried = [f"talk[1] {t}" for t in TALK]  # the restart runs only partition 1 again
    tally = [f"tally {t}" for t in TALLY]
    assert lines(baton("logs", "2", db=db_url)) == [*first, failure, *retried, *tally]
    assert lines(baton("logs", "1", db=db_url)) == [*first, failure]  # not what came later
    assert lines(baton("logs", "2", "--step", "talk", "--attempt", "2", db=db_url)) == retried
    assert lines(baton("logs", "2", "--partition", "1", "--attempt", "1", db=db_url)) == [
        *first[len(TALK) :],
        failure,
    ]
    none = baton("logs", "2", "--attempt", "3", db=db_url)
    assert none.returncode == 0 and none.stdout == "" and "no logs of 2 match" in none.stderr


def test_a_step_killed_with_sigkill_loses_none_of_its_output(
    manifest: str, sqlite_url: str
) -> None:
    baton("run", manifest, "-p", "day=3", "--no-progress", db=sqlite_url,
          env={"LOGJOBS_KILL": "1"})  # fmt: skip
    out = lines(baton("logs", "1", "--partition", "1", db=sqlite_url))
    assert out == [f"talk[1] {t}" for t in TALK]


def test_json_log_format_reaches_the_step_processes(manifest: str, sqlite_url: str) -> None:
    run = baton("--log-format", "json", "run", manifest, "-p", "day=4", "--no-progress",
                db=sqlite_url)  # fmt: skip
    assert run.returncode == 0, run.stderr
    records = [
        json.loads(line.split(" ", 1)[1])
        for line in lines(baton("logs", "1", db=sqlite_url))
        if line.split(" ", 1)[1].startswith("{")
    ]
    talked = [r for r in records if r["message"] == "talked"]
    assert sorted(r["partition"] for r in talked) == [0, 1]
    assert all(r["execution"] == 1 and r["step"] == "talk" and r["attempt"] == 1 for r in talked)
    assert all("chunk" not in r for r in talked)  # a tasklet is never inside a chunk
    items = [r for r in records if r["message"].startswith("item ")]
    assert [(r["message"], r["chunk"]) for r in items] == [
        ("item 1", 0), ("item 2", 0), ("item 3", 1), ("item 4", 1), ("item 5", 2),
    ]  # fmt: skip
    assert {"time", "level", "logger"} <= set(items[0]) and items[0]["level"] == "WARNING"
    bad = baton("--log-format", "yaml", "jobs", db=sqlite_url)
    assert bad.returncode == ExitCode.USAGE and "unknown log format 'yaml'" in bad.stderr


def test_follow_streams_a_running_execution_until_it_ends(manifest: str, sqlite_url: str) -> None:
    """``-f`` started while the run goes: it ends by itself when the run has ended,
    with every line once."""
    run = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", manifest, "-p", "day=5", "--no-progress",
         "--db", sqlite_url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert run.stdout is not None and run.stdout.readline().startswith("Execution 1 ")
    followed = baton("logs", "1", "-f", db=sqlite_url, timeout=120)
    assert run.wait(timeout=60) == 0
    out = lines(followed)
    assert sorted(out) == sorted(
        [f"talk[{p}] {t}" for p in (0, 1) for t in TALK] + [f"tally {t}" for t in TALLY]
    )


def test_where_the_files_are_and_an_unknown_execution(
    manifest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATON_LOG_DIR", raising=False)
    db = f"sqlite:///{tmp_path / 'here' / 'baton.db'}"
    (tmp_path / "here").mkdir()
    assert baton("run", manifest, "-p", "day=6", "--no-progress", db=db).returncode == 0
    kept = sorted(p.name for p in (tmp_path / "here" / ".baton" / "logs").glob("*/1/*.log"))
    assert kept == ["00001_step_talk_0.log", "00002_step_talk_1.log", "00003_step_tally_x.log"]
    elsewhere = tmp_path / "elsewhere"
    assert baton("--log-dir", str(elsewhere), "run", manifest, "-p", "day=7", "--no-progress",
                 db=db).returncode == 0  # fmt: skip
    assert len(list(elsewhere.glob("*/2/*.log"))) == 3
    assert lines(baton("--log-dir", str(elsewhere), "logs", "2", "--step", "tally", db=db))
    unknown = baton("logs", "99", db=db)
    assert unknown.returncode == ExitCode.INVALID
    assert unknown.stderr.splitlines() == ["error: no job execution with id 99"]
