"""What a signal means to a step process, in a pod and locally.

In a pod (the operator's manifests set ``BATON_EXECUTOR=kubernetes``) SIGTERM means
"this pod is going away" (``kubectl delete pod``, an eviction, a drain): the step
finishes its chunk, checkpoints and exits 9 (continue), so the Job controller starts a
new pod for that partition, which resumes from the checkpoint; the job keeps running.
Only a stop request (the job STOPPING: ``spec.stop``) makes it end STOPPED (exit 3).
Locally SIGTERM/SIGINT to a step still means "stop the job" (``baton run`` documents it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import baton
import pytest
import yaml
from baton import BatchStatus, JobRepository
from baton.core.entities import JobExecution, StepExecution
from baton.flow.partitions import plan_partitions
from baton.spec.model import BatchJob
from conftest import ROOT
from sqlalchemy import create_engine, text

NUMBERS = ROOT / "examples" / "numbers"
POD = {"BATON_EXECUTOR": "kubernetes", "BATON_TERMINATION_GRACE_SECONDS": "30"}
COUNT = 600  # two partitions of 300 numbers, 25 per chunk


def launch(repo: JobRepository, delay_ms: int = 4, source_dir: Path = NUMBERS) -> JobExecution:
    """A STARTED execution of count-numbers-fanout (2 partitions) with its table made:
    what the operator has done when it creates the load step's Indexed Job."""
    doc = yaml.safe_load((NUMBERS / "partitioned.yaml").read_text())
    doc["spec"]["steps"][1]["partitions"] = {"count": 2}
    doc["spec"]["steps"][1]["chunk"]["size"] = 25
    doc["spec"]["steps"].append({"name": "stubborn", "tasklet": "stubborn:run"})
    job = BatchJob.model_validate(doc)
    params = job.spec.bind({"count": COUNT, "delayMs": delay_ms})
    e = repo.launch(
        job.name, job.dump(), params, prevent_restart=False, source_dir=str(source_dir), owner="t"
    )
    e = repo.transition(e.id, BatchStatus.STARTED, action="start", start=True)
    plan_partitions(repo, e, job, "load")
    sys.path.insert(0, str(NUMBERS))
    try:
        from counting import numbers_table

        numbers_table.create(repo.engine, checkfirst=True)
    finally:
        sys.path.remove(str(NUMBERS))
    return e


def step(
    repo: JobRepository, e: JobExecution, name: str, partition: int | None, env: dict[str, str]
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "baton.step", str(e.id), name]
    if partition is not None:
        args += ["--partition", str(partition)]
    here = str(Path(baton.__file__).resolve().parents[1])  # the baton this test imports
    path = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=dict(os.environ, BATON_DB_URL=repo.url, PYTHONPATH=path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def unit(repo: JobRepository, e: JobExecution, name: str, partition: int | None) -> StepExecution:
    return next(
        s
        for s in repo.step_executions(e.id)
        if s.step_name == name and s.partition == partition and s.kind == "step"
    )


def signal_when_committed(
    repo: JobRepository,
    e: JobExecution,
    proc: subprocess.Popen[str],
    commits: int = 2,
    send: bool = True,
) -> None:
    """SIGTERM the step process once its partition 0 has committed ``commits`` chunks
    (just wait for that when not ``send``)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = [s for s in repo.step_executions(e.id) if s.partition == 0]
        if rows and rows[0].commit_count >= commits:
            if send:
                proc.send_signal(signal.SIGTERM)
            return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.02)
    raise AssertionError("partition 0 never committed")


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"step process still running after {timeout}s:\n{out}") from None
    return proc.returncode, out


def rows(repo: JobRepository, first: int, last: int) -> tuple[int, int]:
    engine = create_engine(repo.url)
    try:
        with engine.connect() as c:
            total, distinct = c.execute(
                text(
                    "SELECT count(*), count(DISTINCT n) FROM numbers "
                    "WHERE count_to = :c AND n BETWEEN :a AND :b"
                ),
                {"c": COUNT, "a": first, "b": last},
            ).one()
    finally:
        engine.dispose()
    return int(total), int(distinct)


def test_in_a_pod_sigterm_continues_the_partition_in_a_new_pod(repo: JobRepository) -> None:
    e = launch(repo)
    proc = step(repo, e, "load", 0, POD)
    signal_when_committed(repo, e, proc)
    code, out = finish(proc)
    assert code == 9, out  # continue: podFailurePolicy Ignore, a new pod for the index
    left = unit(repo, e, "load", 0)
    assert (left.status, left.exit_code) == (BatchStatus.STOPPED, "CONTINUE"), left
    assert 0 < left.read_count < 300
    assert repo.get_execution(e.id).status is BatchStatus.STARTED  # the job runs on
    # the new pod resumes from the checkpoint: every number of the partition once
    code, out = finish(step(repo, e, "load", 0, POD))
    assert code == 0, out
    done = unit(repo, e, "load", 0)
    assert done.status is BatchStatus.COMPLETED and done.read_count == 300
    assert rows(repo, 1, 300) == (300, 300)


def test_in_a_pod_a_stop_request_still_stops(repo: JobRepository) -> None:
    """spec.stop (the job STOPPING) and the pods' SIGTERM (the operator deletes them
    after the stop's grace period): the partition ends STOPPED, at its checkpoint (exit
    3) or, when the signal is seen first, in its next pod, which the STOPPING job turns
    away (exit 3) without reading anything."""
    e = launch(repo)
    proc = step(repo, e, "load", 0, POD)
    signal_when_committed(repo, e, proc, commits=1, send=False)
    repo.transition(e.id, BatchStatus.STOPPING, action="stop")
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code in (3, 9), out
    read = unit(repo, e, "load", 0).read_count
    if code == 9:  # the new pod of the index
        code, out = finish(step(repo, e, "load", 0, POD))
        assert code == 3, out
    left = unit(repo, e, "load", 0)
    assert left.status is BatchStatus.STOPPED and left.read_count == read < 300
    assert repo.get_execution(e.id).status is BatchStatus.STOPPING


def test_locally_sigterm_stops_the_job(repo: JobRepository) -> None:
    e = launch(repo)
    proc = step(repo, e, "load", 0, {})
    signal_when_committed(repo, e, proc)
    code, out = finish(proc)
    assert code == 3, out
    assert unit(repo, e, "load", 0).exit_description == "stopped on signal"
    assert repo.get_execution(e.id).status is BatchStatus.STOPPING


def test_in_a_pod_a_step_that_cannot_stop_exits_9_before_the_grace_period_ends(
    repo: JobRepository, tmp_path: Path
) -> None:
    """A tasklet that ignores the stop would be SIGKILLed at the end of the pod's grace
    period (exit 137: a failure counted against the retry budget); it exits 9 first, and
    its unit stays STARTED, so the new pod runs it again."""
    (tmp_path / "stubborn.py").write_text(
        "import time\n\ndef run(ctx):\n    time.sleep(120)\n"
    )  # fmt: skip
    e = launch(repo, source_dir=tmp_path)
    proc = step(repo, e, "stubborn", None, {**POD, "BATON_TERMINATION_GRACE_SECONDS": "6"})
    deadline = time.monotonic() + 60
    while not [s for s in repo.step_executions(e.id) if s.step_name == "stubborn"]:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    time.sleep(0.3)  # inside the tasklet, its signal handlers installed
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc, timeout=30)
    assert code == 9, out
    assert unit(repo, e, "stubborn", None).status is BatchStatus.STARTED
    assert repo.get_execution(e.id).status is BatchStatus.STARTED


@pytest.fixture(autouse=True)
def _no_pod_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in POD:
        monkeypatch.delenv(name, raising=False)
