"""Late binding through the real `baton` command, on SQLite and PostgreSQL: parameters
and the job context bound into component args when a unit opens; references and args
that cannot work refused at launch (exit 5, no instance, no execution); a context key
no earlier step wrote fails the step that needs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from baton import BatchStatus, ExitCode, JobRepository
from conftest import ROOT
from conftest import baton_in_process as invoke
from sqlalchemy import text

pytestmark = pytest.mark.slow
ORDERS = ROOT / "examples" / "orders" / "job.yaml"

CODE = '''\
import json
from pathlib import Path


class Record:
    """Writes the args it was built with, each with its type."""

    def __init__(self, out, n, day, label, literal="", seen=None):
        self.out = out
        self.values = {"n": n, "day": day, "label": label, "literal": literal, "seen": seen}

    def execute(self, ctx):
        values = self.values.items()
        typed = {k: [type(v).__name__, v if k == "seen" else str(v)] for k, v in values}
        Path(self.out).write_text(json.dumps(typed))


def seed(ctx):
    ctx.context["seen"] = {"files": ["a", "b"]}
'''

JOB = """\
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: bound}}
spec:
  incrementer: run.id
  parameters:
    - {{name: n, type: int}}
    - {{name: day, type: date, default: "2026-01-02"}}
    - {{name: dir, type: string}}
  steps:
    - {{name: seed, tasklet: 'bound:seed'}}
    - name: record
      tasklet: 'bound:Record'
      taskletArgs:
        out: "${{params.dir}}/record.json"
        n: "${{params.n}}"
        day: "${{params.day}}"
        label: "n=${{params.n}} on ${{params.day}}"
        literal: "$${{params.n}} costs $$5"
        seen: {seen}
    - name: copy
      chunk:
        reader: baton.items:JsonLinesReader
        readerArgs: {{path: "${{params.dir}}/in.jsonl"}}
        writer: baton.items:CsvWriter
        writerArgs: {writer_args}
        size: 2
"""
GOOD_WRITER = '{path: "${params.dir}/out-${params.day}.csv", fields: [n]}'


def job(folder: Path, seen: str = '["${context.seen}"]', writer_args: str = GOOD_WRITER) -> str:
    (folder / "bound.py").write_text(CODE)
    (folder / "in.jsonl").write_text("".join(json.dumps({"n": n}) + "\n" for n in range(5)))
    path = folder / "bound.yaml"
    path.write_text(JOB.format(seen=seen, writer_args=writer_args))
    return str(path)


def recorded(db: str) -> tuple[int, int]:
    """(job instances, job executions) in the repository."""
    repo = JobRepository(db)
    try:
        with repo.engine.connect() as c:
            counts = [
                int(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                for t in ("baton_job_instance", "baton_job_execution")
            ]
            return counts[0], counts[1]
    finally:
        repo.dispose()


def assert_refused(r: subprocess.CompletedProcess[str], needle: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert needle in lines[0], lines[0]
    assert r.returncode == ExitCode.INVALID, (r.returncode, r.stderr)


def test_parameters_and_context_are_bound_into_args_with_their_types(
    db_url: str, tmp_path: Path
) -> None:
    manifest = job(tmp_path)
    r = invoke("run", manifest, "-p", "n=3", "-p", f"dir={tmp_path}", "--no-progress", db=db_url)
    assert r.returncode == ExitCode.COMPLETED, r.stderr
    assert json.loads((tmp_path / "record.json").read_text()) == {
        "n": ["int", "3"],  # whole value: the parameter's own type
        "day": ["date", "2026-01-02"],  # the default, still a date
        "label": ["str", "n=3 on 2026-01-02"],  # inside a string: text
        "literal": ["str", "${params.n} costs $$5"],  # $${ escapes
        "seen": ["list", [{"files": ["a", "b"]}]],  # written by the step before
    }
    out = tmp_path / "out-2026-01-02.csv"
    assert out.read_text().split() == ["n", "0", "1", "2", "3", "4"]


def test_a_missing_context_key_fails_the_step_that_binds_it(db_url: str, tmp_path: Path) -> None:
    manifest = job(tmp_path, seen='"${context.sene}"')
    r = invoke("run", manifest, "-p", "n=3", "-p", f"dir={tmp_path}", "--no-progress", db=db_url)
    assert r.returncode == ExitCode.FAILED, r.stderr
    repo = JobRepository(db_url)
    try:
        steps = {s.step_name: s for s in repo.step_executions(1)}
    finally:
        repo.dispose()
    assert steps["seed"].status is BatchStatus.COMPLETED
    assert steps["record"].status is BatchStatus.FAILED
    assert steps["record"].exit_description.splitlines()[0] == (
        "InvalidDefinition: taskletArgs.seen: ${context.sene}: no key 'sene' in the job "
        "context (did you mean 'seen'?); keys: seen"
    )
    assert "copy" not in steps


@pytest.mark.parametrize(
    ("seen", "writer_args", "needle"),
    [
        (
            '"${params.nn}"',
            GOOD_WRITER,
            "step 'record': taskletArgs.seen: ${params.nn}: unknown parameter 'nn' "
            "(did you mean 'n'?); declared: day, dir, n",
        ),
        ('"${ctx.seen}"', GOOD_WRITER, "taskletArgs.seen: bad reference '${ctx.seen}'"),
        ('"${context.seen"', GOOD_WRITER, "taskletArgs.seen: unclosed '${'"),
        (
            "null",
            '{pathh: "${params.dir}/o.csv", fields: [n]}',
            "writer baton.items:CsvWriter: unknown writerArgs 'pathh' (did you mean 'path'?); "
            "accepted: path, fields, header, name, encoding",
        ),
        (
            "null",
            '{path: "${params.dir}/o.csv"}',
            "writer baton.items:CsvWriter: missing required writerArgs 'fields'",
        ),
    ],
)
def test_what_cannot_bind_or_build_is_refused_at_launch_with_nothing_recorded(
    db_url: str, tmp_path: Path, seen: str, writer_args: str, needle: str
) -> None:
    manifest = job(tmp_path, seen=seen, writer_args=writer_args)
    params = ("-p", "n=3", "-p", f"dir={tmp_path}")
    assert_refused(invoke("validate", manifest, *params, db=db_url), needle)
    assert_refused(invoke("run", manifest, *params, "--no-progress", db=db_url), needle)
    assert_refused(invoke("start-next", manifest, *params, "--no-progress", db=db_url), needle)
    assert recorded(db_url) == (0, 0)
    assert not (tmp_path / "record.json").exists()


def test_validate_accepts_a_job_whose_references_all_bind(sqlite_url: str, tmp_path: Path) -> None:
    r = invoke("validate", job(tmp_path), "-p", "n=3", "-p", "dir=/x", db=sqlite_url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "OK: job 'bound' is valid (3 step(s))"


def test_the_orders_example_reads_the_file_its_input_parameter_names(
    db_url: str, tmp_path: Path
) -> None:
    """examples/orders binds ``readerArgs`` from its parameters: ``-p input=`` picks the
    file (generated there when missing); the day arrives as a date."""
    source = tmp_path / "orders.csv"
    params = ("-p", "date=2026-03-04", "-p", "rows=700", "-p", f"input={source}")
    r = invoke("run", str(ORDERS), *params, "--no-progress", db=db_url)
    assert r.returncode == ExitCode.COMPLETED, r.stderr
    assert len(source.read_text().splitlines()) == 701
    repo = JobRepository(db_url)
    try:
        with repo.engine.connect() as c:
            days = c.execute(text("SELECT DISTINCT order_date FROM orders")).scalars().all()
            written = c.execute(text("SELECT count(*) FROM orders")).scalar_one()
        (load,) = [s for s in repo.step_executions(1) if s.step_name == "load"]
    finally:
        repo.dispose()
    assert [str(d) for d in days] == ["2026-03-04"]
    assert written == load.write_count == 700 - load.filter_count > 600
