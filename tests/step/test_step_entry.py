"""The step entrypoint as pods run it: `baton step` (without loading the CLI) and
`python -m baton.step` run a partition and record it; a unit is one transaction to open
and one to finish, and never migrates (no Alembic, no DDL) a current schema, while an
empty repository is still migrated first, as by any other Baton process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from baton import BatchStatus, ExitCode, JobRepository, NoSuchExecution
from baton.core.counts import Counts
from baton.core.entities import JobExecution
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.flow.partitions import plan_partitions
from baton.repository import steps as repository_steps
from baton.repository.engine import SCHEMA_REVISION, current_revision, make_engine
from baton.spec.model import BatchJob
from baton.step.entry import partition_for_index, run_unit
from baton.step.runner import run_step
from conftest import ROOT
from sqlalchemy import Connection, Engine, event

HEAVY = ("typer", "rich", "alembic", "kubernetes", "kopf", "baton.cli.app", "baton.kube")
REPORT_MODULES = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('loaded:', [m for m in {HEAVY!r} if m in sys.modules]))\n"
)


def launch_fan(repo: JobRepository, items: list[Any], name: str = "fan") -> JobExecution:
    """A STARTED execution whose step ``map`` has its partitions planned: what the
    operator has done when it creates the step's Indexed Job."""
    job = BatchJob.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "steps": [
                    {"name": "map", "tasklet": "flowjobs:square", "partitions": {"items": items}}
                ]
            },
        }
    )
    e = repo.launch(
        job.name, job.dump(), JobParameters(), prevent_restart=False, source_dir=None, owner="t"
    )
    e = repo.transition(e.id, BatchStatus.STARTED, action="start", start=True)
    plan_partitions(repo, e, job, "map")
    return e


def run(
    args: list[str], db: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=dict(os.environ, BATON_DB_URL=db, **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_both_entrypoints_run_a_partition_and_record_it(repo: JobRepository) -> None:
    e = launch_fan(repo, [{"n": 3}, {"n": 4}, {"n": 5}])
    pod = {"BATON_PARTITIONS": "2,0", "BATON_WORKER": "pod-a@node"}
    # The `baton` script, as a pod's command runs it: index 0 -> partition 2.
    script = REPORT_MODULES + "from baton.cli import main\nmain()\n"
    first = run(
        ["-c", script, "step", str(e.id), "map", "--partition-from-index"],
        repo.url,
        pod | {"JOB_COMPLETION_INDEX": "0"},
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == "loaded: []"
    # `python -m baton.step`: index 1 -> partition 0.
    second = run(
        ["-m", "baton.step", str(e.id), "map", "--partition-from-index"],
        repo.url,
        pod | {"JOB_COMPLETION_INDEX": "1", "BATON_WORKER": "pod-b@node"},
    )
    assert second.returncode == 0, second.stderr
    steps = {s.partition: s for s in repo.step_executions(e.id)}
    assert set(steps) == {0, 2}
    assert all(s.status is BatchStatus.COMPLETED and s.kind == "step" for s in steps.values())
    assert (steps[0].result, steps[2].result) == (9, 25)
    assert (steps[0].worker, steps[2].worker) == ("pod-b@node", "pod-a@node")
    assert steps[0].peak_memory_kb and steps[0].end_time


@pytest.mark.slow
def test_errors_are_one_line_with_the_cli_exit_codes(repo: JobRepository) -> None:
    usage = run(["-m", "baton.step", "not-a-number", "map"], repo.url)
    assert usage.returncode == ExitCode.USAGE
    assert usage.stderr.startswith("error: ") and len(usage.stderr.splitlines()) == 1
    missing = run(["-m", "baton.step", "999", "map"], repo.url)
    assert missing.returncode == ExitCode.INVALID
    assert missing.stderr.strip() == "error: no job execution with id 999"
    # The Typer CLI's own `step` command (the local executor's `python -m baton step`).
    e = launch_fan(repo, [{"n": 6}])
    cli = run(["-m", "baton", "step", str(e.id), "map", "--partition", "0"], repo.url)
    assert cli.returncode == 0, cli.stderr
    assert [s.result for s in repo.step_executions(e.id)] == [36]


def test_partition_for_index() -> None:
    env = {"BATON_PARTITIONS": "4,7,9", "JOB_COMPLETION_INDEX": "1"}
    assert partition_for_index(env) == 7


class Recorder:
    """Transactions and statements of every engine while it is active."""

    def __init__(self) -> None:
        self.begins = 0
        self.statements: list[str] = []

    def _begin(self, _conn: Connection) -> None:
        self.begins += 1

    def _statement(self, _conn: Connection, _cur: Any, statement: str, *_: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    def __enter__(self) -> Recorder:
        event.listen(Engine, "begin", self._begin)
        event.listen(Engine, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(Engine, "begin", self._begin)
        event.remove(Engine, "before_cursor_execute", self._statement)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as r:
        yield r


def test_a_unit_is_one_transaction_to_open_one_to_finish_and_no_migration(
    repo: JobRepository, recorder: Recorder
) -> None:
    e = launch_fan(repo, [{"n": 2}, {"n": 3}])
    recorder.begins, recorder.statements = 0, []
    assert run_unit(repo.url, e.id, "map", 1) is ExitCode.COMPLETED
    assert recorder.begins == 2, recorder.statements
    text = "\n".join(recorder.statements).upper()
    for never in ("CREATE ", "ALTER ", "PG_CLASS", "SQLITE_MASTER"):
        assert never not in text, recorder.statements
    # The schema revision is read inside the query that reads the execution.
    (version_reads,) = [s for s in recorder.statements if "baton_alembic_version" in s]
    assert "baton_job_execution" in version_reads and "baton_partition" in version_reads
    # open: one read (execution + parameters + partition args + revision + the step row
    # to resume or inherit from) and the step row's insert; finish: one update
    # (SQLite's BEGIN IMMEDIATE is a statement too: not counted)
    sql = [s for s in recorder.statements if not s.startswith("BEGIN")]
    assert len(sql) == 3, sql
    assert "baton_job_execution_param" in version_reads and "baton_step_execution" in version_reads
    assert sql[1].startswith("INSERT INTO baton_step_execution"), sql
    assert [s.result for s in repo.step_executions(e.id)] == [9]


def test_an_empty_repository_is_migrated_before_the_unit_looks(db_url: str) -> None:
    with pytest.raises(NoSuchExecution, match="no job execution with id 1"):
        run_unit(db_url, 1, "map", 0)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert current_revision(conn) == SCHEMA_REVISION
    engine.dispose()


def test_a_schema_at_another_revision_goes_through_migrate(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = launch_fan(repo, [{"n": 7}])
    migrated: list[Engine] = []
    monkeypatch.setattr(repository_steps, "SCHEMA_REVISION", "9999")
    monkeypatch.setattr(repository_steps, "migrate", migrated.append)
    assert run_step(repo, e.id, "map", 0) is ExitCode.COMPLETED
    assert migrated == [repo.engine]
    assert [s.result for s in repo.step_executions(e.id)] == [49]


def test_open_unit_writes_nothing_when_not_admitted(repo: JobRepository) -> None:
    e = launch_fan(repo, [{"n": 1}])
    seen: list[JobExecution] = []

    def refuse(execution: JobExecution) -> bool:
        seen.append(execution)
        return False

    assert repo.open_unit(e.id, "map", 0, worker="w", admit=refuse) is None
    assert seen[0].id == e.id and seen[0].job_name == "fan"
    assert repo.step_executions(e.id) == []

    def explode(_execution: JobExecution) -> bool:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        repo.open_unit(e.id, "map", 0, worker="w", admit=explode)
    assert repo.step_executions(e.id) == []
    opened = repo.open_unit(e.id, "map", 0, worker="w", admit=lambda _e: True)
    assert opened is not None
    assert opened.partition_args == {"n": 1}
    assert opened.step.status is BatchStatus.STARTED and opened.step.worker == "w"
    assert opened.execution.parameters == JobParameters()


def test_open_unit_reads_the_parameters_as_get_execution_does(repo: JobRepository) -> None:
    job = BatchJob.model_validate(
        {"metadata": {"name": "typed"}, "spec": {"steps": [{"name": "s", "tasklet": "m:f"}]}}
    )
    params = JobParameters(
        (
            JobParameter("day", ParamType.DATE, dt.date(2024, 2, 29)),
            JobParameter("at", ParamType.DATETIME, dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.UTC)),
            JobParameter("n", ParamType.INT, 7),
            JobParameter("x", ParamType.FLOAT, 0.5),
            JobParameter("on", ParamType.BOOL, True),
            JobParameter("note", ParamType.STRING, 'it\'s "quoted"', identifying=False),
        )
    )
    e = repo.launch(job.name, job.dump(), params, prevent_restart=False, source_dir=None, owner="t")
    opened = repo.open_unit(e.id, "s", None, worker="w", admit=lambda _e: True)
    assert opened is not None and opened.partition_args is None
    stored = repo.get_execution(e.id)
    assert set(opened.execution.parameters.items) == set(stored.parameters.items)
    assert set(stored.parameters.items) == set(params.items)
    assert replace(opened.execution, parameters=params) == replace(stored, parameters=params)


def _opener(repo: JobRepository, how: str) -> Any:
    """``open_step``, or ``open_unit`` (the pod's path, one read), as one signature."""
    if how == "open_step":
        return repo.open_step

    def via_unit(e: JobExecution, step: str, part: int, *, worker: str, kind: str = "step") -> Any:
        opened = repo.open_unit(e.id, step, part, worker=worker, kind=kind, admit=lambda _e: True)
        assert opened is not None
        return opened.step

    return via_unit


@pytest.mark.parametrize("how", ["open_step", "open_unit"])
def test_open_step_resumes_in_place_and_inherits_only_an_unfinished_context(
    repo: JobRepository, how: str
) -> None:
    open_step = _opener(repo, how)
    e1 = launch_fan(repo, [{"n": 1}], name="inherit")
    s1 = open_step(e1, "map", 0, worker="a")
    with repo.write() as conn:
        repo.checkpoint(conn, s1, Counts(read=5), {"pos": 5})
    repo.finish_step(s1, BatchStatus.FAILED, context={"pos": 5})
    repo.end_orphaned(e1, BatchStatus.FAILED, "test", "fail")

    e2 = repo.launch(
        "inherit", e1.job_spec, JobParameters(), prevent_restart=False, source_dir=None, owner="t"
    )
    s2 = open_step(e2, "map", 0, worker="b")
    assert (s2.execution_id, s2.context, s2.incarnations) == (e2.id, {"pos": 5}, 1)
    assert s2.read_count == 0  # counts are per execution; the cursor carries over
    again = open_step(e2, "map", 0, worker="c")  # a retried pod: the same row
    assert (again.id, again.incarnations, again.worker) == (s2.id, 2, "c")
    assert again.context == {"pos": 5} and again.version == s2.version + 1
    comp = open_step(e2, "map", 0, worker="d", kind="compensation")
    assert comp.id != s2.id and comp.context == {} and comp.kind == "compensation"
    repo.finish_step(again, BatchStatus.COMPLETED, context={"pos": 9})
    done = open_step(e2, "map", 0, worker="e")  # COMPLETED: returned as it is
    assert (done.id, done.status, done.worker) == (s2.id, BatchStatus.COMPLETED, "c")
    repo.end_orphaned(e2, BatchStatus.FAILED, "test", "fail")

    e3 = repo.launch(
        "inherit", e1.job_spec, JobParameters(), prevent_restart=False, source_dir=None, owner="t"
    )
    s3 = open_step(e3, "map", 0, worker="f")
    assert s3.context == {}  # the latest earlier attempt COMPLETED: start afresh
