"""The real `baton` command line in subprocesses: running a job, the JSON contracts of
the listings, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from baton import ExitCode
from conftest import JOBS, baton

NUMBERS = str(JOBS / "numbers.yaml")
pytestmark = pytest.mark.slow


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
