"""Concurrent `baton start-next`: each call a new instance with its own run.id.

The run.id was read before the launch transaction, so ten calls at once made two
instances and refused eight as "still running" (exit 4). It is now taken inside the
launch transaction, which is serialized per job (PostgreSQL: an advisory lock on the
job name; SQLite: BEGIN IMMEDIATE)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from baton import JobRepository
from conftest import ROOT

pytestmark = pytest.mark.slow

CALLS = 10
JOB = """\
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {name: nextjob}
spec:
  incrementer: run.id
  parameters:
    - {name: region, type: string, default: eu}
  steps:
    - {name: noop, tasklet: 'builtins:id'}
"""


def test_concurrent_start_next_makes_distinct_instances(db_url: str, tmp_path: Path) -> None:
    manifest = tmp_path / "next.yaml"
    manifest.write_text(JOB)
    JobRepository(db_url).dispose()  # the schema exists: the race is the launches'
    env = dict(os.environ, BATON_DB_URL=db_url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "baton", "start-next", str(manifest), "--no-progress"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(CALLS)
    ]
    results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * CALLS, results
    repo = JobRepository(db_url)
    try:
        executions = repo.executions(job="nextjob")
        run_ids = sorted(e.parameters.values()["run.id"] for e in executions)
        assert run_ids == list(range(1, CALLS + 1))
        assert len({e.instance_id for e in executions}) == CALLS
        assert repo.next_run_id("nextjob") == CALLS + 1
    finally:
        repo.dispose()
