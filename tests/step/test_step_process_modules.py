"""The step process loads exactly the modules it uses: every pod of a partitioned step
pays its imports, so the set of Baton modules a real unit process loads is written
down here (an allow-list, not a blacklist). A new import anywhere on the step's path
fails this test, and so does a module listed here that the step no longer loads:
either is a decision to make, not to slip through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from baton.core.entities import JobExecution
from baton.core.parameters import JobParameters
from baton.core.status import BatchStatus, ExitCode
from baton.repository import JobRepository
from baton.spec.model import BatchJob
from conftest import ROOT

pytestmark = pytest.mark.slow

# `python -m baton.step ID STEP`, with the modules it loaded (and the collector's state:
# enabled again after the imports, the start-up heap frozen) written at exit.
PROBE = (
    "import atexit, gc, json, runpy, sys\n"
    "out, sys.argv = sys.argv[1], ['baton.step', *sys.argv[2:]]\n"
    "def dump():\n"
    "    names = [m for m in sys.modules if m.split('.')[0] in ('baton', 'baton_operator')]\n"
    "    gc_state = {'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}\n"
    "    with open(out, 'w') as f:\n"
    "        json.dump({'modules': sorted(names), 'gc': gc_state}, f)\n"
    "atexit.register(dump)\n"
    "runpy.run_module('baton.step', run_name='__main__', alter_sys=True)\n"
)

# What every unit loads: the step runtime, the repository it records into (the whole
# JobRepository facade), the snapshotted job spec's model, the import resolver
# that builds the unit's code, the binder of its args (${params.x}), the log
# formatter (BATON_LOG_FORMAT, stdlib only) and the progress events to the local
# executor (stdlib only).
TASKLET = {
    "baton",
    "baton.core",
    "baton.core.codec",
    "baton.core.counts",
    "baton.core.entities",
    "baton.core.errors",
    "baton.core.exports",
    "baton.core.logformat",
    "baton.core.parameters",
    "baton.core.restart",
    "baton.core.status",
    "baton.flow",
    "baton.flow.partitions",
    "baton.repository",
    "baton.repository.engine",
    "baton.repository.executions",
    "baton.repository.facade",
    "baton.repository.identity",
    "baton.repository.instances",
    "baton.repository.mapping",
    "baton.repository.partitions",
    "baton.repository.retry",
    "baton.repository.schema",
    "baton.repository.session",
    "baton.repository.steps",
    "baton.repository.transitions",
    "baton.repository.unit_open",
    "baton.spec",
    "baton.spec.binding",
    "baton.spec.model",
    "baton.spec.refs",
    "baton.spec.retention",
    "baton.spec.snapshot",
    "baton.spec.template",
    "baton.spec.values",
    "baton.step",
    "baton.step.context",
    "baton.step.deadline",
    "baton.step.entry",
    "baton.step.events",
    "baton.step.failures",
    "baton.step.outcome",
    "baton.step.runner",
    "baton.step.signals",
    "baton.step.unit",
}
# A chunk step adds the chunk loop and the items it may meet: the protocols it sorts
# writers by, a composite's delegates, the SQL reader it retries, an iterable reader
# it wraps; and the file readers and writers, because its manifest names
# `baton.items:JsonLinesReader` and `baton.items:CsvWriter`.
CHUNK = TASKLET | {
    "baton.items",
    "baton.items.composite",
    "baton.items.database",
    "baton.items.file_readers",
    "baton.items.file_writers",
    "baton.items.memory",
    "baton.items.protocols",
    "baton.step.chunk",
    "baton.step.components",
    "baton.step.reading",
    "baton.step.scan",
    "baton.step.writers",
}

NEVER = (
    "typer",
    "rich",
    "alembic",
    "kubernetes",
    "kopf",
    "baton_operator",
    "baton.cli",
    "baton.launch",
    "baton.explore",
    "baton.executors",
    "baton.registry",
)


def launch(repo: JobRepository, spec: dict[str, Any]) -> JobExecution:
    """A STARTED execution of ``spec``: what an executor has done before a unit runs."""
    job = BatchJob.model_validate({"metadata": {"name": "lean"}, "spec": spec})
    e = repo.launch(
        job.name, job.dump(), JobParameters(), prevent_restart=False, source_dir=None, owner="t"
    )
    return repo.transition(e.id, BatchStatus.STARTED, action="start", start=True)


def loaded_modules(repo: JobRepository, execution: JobExecution, step: str, tmp: Path) -> set[str]:
    out = tmp / f"{step}.modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), str(execution.id), step],
        cwd=ROOT,
        env=dict(os.environ, BATON_DB_URL=repo.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == ExitCode.COMPLETED, done.stderr
    (record,) = [s for s in repo.step_executions(execution.id) if s.step_name == step]
    assert record.status is BatchStatus.COMPLETED
    probed = json.loads(out.read_text())
    # the collector is off during the imports only: on for the unit's work, the
    # start-up heap (SQLAlchemy, pydantic, the runtime) frozen out of its walks
    assert probed["gc"]["enabled"] and probed["gc"]["frozen"] > 10_000, probed["gc"]
    return set(probed["modules"])


@pytest.fixture
def sqlite_repo(sqlite_url: str) -> JobRepository:
    return JobRepository(sqlite_url)


def test_a_tasklet_unit_loads_exactly_the_allowed_modules(
    sqlite_repo: JobRepository, tmp_path: Path
) -> None:
    e = launch(sqlite_repo, {"steps": [{"name": "stamp", "tasklet": "flowjobs:stamp"}]})
    modules = loaded_modules(sqlite_repo, e, "stamp", tmp_path)
    assert not {m for m in modules if m.startswith(NEVER)}
    assert modules == TASKLET


def test_a_chunk_unit_loads_exactly_the_allowed_modules(
    sqlite_repo: JobRepository, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(25)))
    chunk = {
        "reader": "baton.items:JsonLinesReader",
        "readerArgs": {"path": str(source)},
        "processor": "filejobs:stamp",
        "writer": "baton.items:CsvWriter",
        "writerArgs": {"path": str(tmp_path / "out.csv"), "fields": ["n", "pid"]},
        "size": 10,
    }
    e = launch(sqlite_repo, {"steps": [{"name": "copy", "chunk": chunk}]})
    modules = loaded_modules(sqlite_repo, e, "copy", tmp_path)
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 26
    assert not {m for m in modules if m.startswith(NEVER)}
    assert modules == CHUNK
