"""Every bad input is one line on stderr (``error: ...``), its documented exit code, and
nothing recorded in the repository: through the real `baton` command in subprocesses,
on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from baton import BatchStatus, ExitCode, JobOperator, JobRegistry, JobRepository
from conftest import JOBS, ROOT, baton
from conftest import baton_in_process as invoke
from sqlalchemy import text

NUMBERS = str(JOBS / "numbers.yaml")
pytestmark = pytest.mark.slow

TASKLET_JOB = """\
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: {name}}}
spec:
  parameters: {parameters}
  steps:
{steps}
"""


def manifest(
    folder: Path,
    name: str,
    steps: str,
    parameters: str = "[]",
    modules: dict[str, str] | None = None,
) -> str:
    """A BatchJob YAML in ``folder`` (its code importable from there) and its modules."""
    for module, code in (modules or {}).items():
        (folder / f"{module}.py").write_text(textwrap.dedent(code))
    path = folder / f"{name}.yaml"
    path.write_text(
        TASKLET_JOB.format(
            name=name, parameters=parameters, steps=textwrap.indent(textwrap.dedent(steps), "    ")
        )
    )
    return str(path)


def executions(db: str) -> int:
    repo = JobRepository(db)
    try:
        with repo.engine.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM baton_job_execution")).scalar_one())
    finally:
        repo.dispose()


def assert_refused(r: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    """One line on stderr, ``error: ...`` naming the cause, the exit code; no traceback."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert needle in lines[0], lines[0]
    assert r.returncode == code, (r.returncode, r.stderr)


def refused(db: str, *args: str, code: int, needle: str, real: bool = False) -> None:
    """Refused with one line and ``code``, nothing recorded; ``real``: through the
    console script in a subprocess rather than in this process."""
    before = executions(db)
    assert_refused(baton(*args, db=db) if real else invoke(*args, db=db), code, needle)
    assert executions(db) == before, "a refused launch recorded an execution"


# ---------------------------------------------------------------- parameters


def test_a_parameter_with_undecodable_bytes_is_refused(db_url: str) -> None:
    """`-p note=$'a\\xff'`: argv holds a byte that is not UTF-8 (a lone surrogate in
    Python), which no database column can store."""
    refused(
        db_url,
        *("run", NUMBERS, "-p", "count=1", "-p", "note=a\udcff", "--no-progress"),
        code=ExitCode.INVALID,
        needle="bad parameter 'note': contains bytes that are not UTF-8",
        real=True,
    )


def test_out_of_range_numbers_are_refused_at_launch(db_url: str, tmp_path: Path) -> None:
    """A 40-digit int passed validation and failed in the step; nan/inf/1e999 made
    instances whose key no one can type. Both are refused before anything is recorded;
    the 64-bit limits themselves are accepted."""
    huge = "1234567890123456789012345678901234567890"
    refused(
        db_url,
        *("run", NUMBERS, "-p", f"count={huge}", "--no-progress"),
        code=ExitCode.INVALID,
        needle="parameter 'count': expected an integer from -9223372036854775808",
    )
    job = manifest(
        tmp_path,
        "rates",
        "- {name: noop, tasklet: 'rates_code:noop'}\n",
        parameters="[{name: rate, type: float}, {name: n, type: int}]",
        modules={"rates_code": "def noop(ctx):\n    return ctx.params['n']\n"},
    )
    for bad in ("nan", "inf", "-Infinity", "1e999"):
        refused(
            db_url,
            *("run", job, "-p", f"rate={bad}", "-p", "n=1", "--no-progress"),
            code=ExitCode.INVALID,
            needle="parameter 'rate': expected a finite number",
        )
    limit = str(2**63 - 1)
    ok = invoke("run", job, "-p", "rate=1e308", "-p", f"n={limit}", "--no-progress", db=db_url)
    assert ok.returncode == ExitCode.COMPLETED, ok.stderr
    repo = JobRepository(db_url)
    try:
        assert repo.get_execution(1).parameters.values() == {"rate": 1e308, "n": 2**63 - 1}
    finally:
        repo.dispose()


def test_out_of_range_defaults_make_an_invalid_manifest(sqlite_url: str, tmp_path: Path) -> None:
    job = manifest(
        tmp_path,
        "defaults",
        "- {name: noop, tasklet: 'os:getcwd'}\n",
        parameters="[{name: n, type: int, default: 99999999999999999999}]",
    )
    refused(
        sqlite_url,
        "run",
        job,
        code=ExitCode.INVALID,
        needle="default of parameter 'n': expected an integer from",
    )
    Path(job).write_text(
        Path(job)
        .read_text()
        .replace("type: int, default: 99999999999999999999", "type: float, default: .nan")
    )
    refused(
        sqlite_url,
        "run",
        job,
        code=ExitCode.INVALID,
        needle="spec.parameters[0].default: nan is not a finite number",
    )


def test_a_deeply_nested_context_value_is_refused(db_url: str) -> None:
    """`--ctx` with 5,000 levels of nesting raised RecursionError."""
    deep = "[" * 5000 + "]" * 5000
    for value in (deep, "[" * 65 + "]" * 65):
        refused(
            db_url,
            *("run", NUMBERS, "-p", "count=1", "--ctx", f"x={value}", "--no-progress"),
            code=ExitCode.INVALID,
            needle="context value 'x': nested deeper than 64 levels",
        )


# ---------------------------------------------------------------- manifests and code


def test_a_binary_file_is_not_a_manifest(db_url: str, tmp_path: Path) -> None:
    refused(db_url, "run", "/bin/true", code=ExitCode.INVALID, needle="/bin/true: not a YAML")
    nul = tmp_path / "nul.yaml"
    nul.write_text('metadata: {name: "a\\0b"}\n')
    refused(
        db_url,
        "run",
        str(nul),
        code=ExitCode.INVALID,
        needle="metadata.name: contains a NUL character",
    )


@pytest.mark.parametrize("code", [0, 3])
def test_sys_exit_while_importing_a_component_is_an_import_error(
    db_url: str, tmp_path: Path, code: int
) -> None:
    """A module calling sys.exit(0) (or 3) at import made `baton run` exit 0 ("done")
    or 3 ("STOPPED") without a word; a .py job file doing so likewise."""
    job = manifest(
        tmp_path,
        "quits",
        f"- {{name: only, tasklet: 'quitter{code}:run'}}\n",
        modules={f"quitter{code}": f"import sys\nsys.exit({code})\ndef run(ctx): pass\n"},
    )
    needle = f"cannot import 'quitter{code}:run': it called sys.exit({code}) while being imported"
    refused(db_url, "run", job, "--no-progress", code=ExitCode.INVALID, needle=needle)
    pyjob = tmp_path / f"quitjob{code}.py"
    pyjob.write_text(f"import sys\nsys.exit({code})\n")
    refused(db_url, "run", str(pyjob), code=ExitCode.INVALID, needle="sys.exit")


def test_sys_exit_while_importing_in_the_step_process_fails_the_step(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The launch imported the module fine; the step process, importing it again, meets
    sys.exit(3): the step FAILS and says why (the run is FAILED, exit 1)."""
    marker = tmp_path / "now-exit"
    job = manifest(
        tmp_path,
        "later",
        """\
        - {name: first, tasklet: 'arm:run'}
        - {name: second, tasklet: 'quits_later:run'}
        """,
        modules={
            "arm": f"from pathlib import Path\ndef run(ctx):\n    Path({str(marker)!r}).touch()\n",
            "quits_later": f"""\
                import os, sys
                if os.path.exists({str(marker)!r}):
                    sys.exit(3)
                def run(ctx):
                    pass
                """,
        },
    )
    r = invoke("run", job, "--no-progress", "--json", db=sqlite_url)
    assert r.returncode == ExitCode.FAILED, r.stderr
    repo = JobRepository(sqlite_url)
    try:
        second = next(s for s in repo.step_executions(1) if s.step_name == "second")
        assert second.status is BatchStatus.FAILED
        assert "cannot import 'quits_later:run': it called sys.exit(3) while being imported" in (
            second.exit_description
        )
    finally:
        repo.dispose()


COMPONENTS = """\
class NoRead:
    def next(self): return None

class NoWrite:
    def put(self, items): pass

class Reader:
    def read(self): return None

class Writer:
    def write(self, items): pass

def a_function(items): pass

not_callable = 42
"""


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        (
            "- {name: c, chunk: {reader: 'comps:NoRead', writer: 'comps:Writer'}}\n",
            "reader comps:NoRead: this class has no read() method",
        ),
        (
            "- {name: c, chunk: {reader: 'comps:Reader', writer: 'comps:NoWrite'}}\n",
            "writer comps:NoWrite: this class has no write() method",
        ),
        (
            "- {name: c, chunk: {reader: 'comps:Reader', writer: 'comps:a_function'}}\n",
            "writer comps:a_function: this function has no write() method",
        ),
        (
            "- {name: c, chunk: {reader: 'comps:a_function', writer: 'comps:Writer'}}\n",
            "reader comps:a_function: this function has no read() method",
        ),
        (
            "- {name: c, chunk: {reader: 'comps:Reader', writer: 'comps:Writer',"
            " readerArgs: {colour: red}}}\n",
            "reader comps:Reader: unknown readerArgs 'colour'; accepted: none",
        ),
        (
            "- {name: c, chunk: {reader: 'comps:Reader', processor: 'comps:not_callable',"
            " writer: 'comps:Writer'}}\n",
            "processor comps:not_callable: this int has no process() method and is not callable",
        ),
        (
            "- {name: t, tasklet: 'comps:a_function'}\n"
            "- parallel: [{name: a, tasklet: 'comps:a_function'},"
            " {name: b, tasklet: 'comps:NoRead'}]\n",
            "tasklet comps:NoRead: this class has no execute() method and is not callable",
        ),
    ],
)
def test_a_component_that_cannot_play_its_role_is_refused_at_launch(
    sqlite_url: str, tmp_path: Path, steps: str, needle: str
) -> None:
    """Found only at run time before (a FAILED execution); now exit 5, nothing recorded.
    Group members are checked as well as chain steps."""
    job = manifest(tmp_path, "roles", steps, modules={"comps": COMPONENTS})
    refused(sqlite_url, "run", job, "--no-progress", code=ExitCode.INVALID, needle=needle)


# ---------------------------------------------------------------- the command line itself


@pytest.mark.parametrize(
    ("args", "needle", "real"),
    [
        (("run", "--bogus"), "error: baton run: No such option: --bogus", True),
        (("show",), "error: baton show: Missing argument 'ID'", False),
        (
            ("executions", "--limit", "many"),
            "error: baton executions: Invalid value for '--limit'",
            False,
        ),
        (("nosuchcommand",), "error: baton: No such command 'nosuchcommand'", False),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    sqlite_url: str, args: tuple[str, ...], needle: str, real: bool
) -> None:
    """Typer drew a multi-line box; now one line, exit 2 (the real console script once)."""
    r = baton(*args, db=sqlite_url) if real else invoke(*args, db=sqlite_url)
    assert_refused(r, ExitCode.USAGE, needle)


def test_an_id_beyond_64_bits_is_no_such_execution(db_url: str) -> None:
    big = "9" * 30
    for args in (("show", big), ("stop", big), ("restart", big), ("recover", big)):
        refused(db_url, *args, code=ExitCode.INVALID, needle=f"no job execution with id {big}")


def test_the_step_entry_point_refuses_an_impossible_id(sqlite_url: str) -> None:
    """`baton step ID STEP` (what pods run) with an id beyond 64 bits: a usage error in
    one line, not an OverflowError traceback from the database driver."""
    r = subprocess.run(
        [sys.executable, "-m", "baton.step", "9" * 30, "load", "--db", sqlite_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_refused(r, ExitCode.USAGE, "error: python -m baton.step: argument ID: no job execution")


def test_piped_output_is_never_wrapped(sqlite_url: str) -> None:
    """Without a terminal (and without COLUMNS) Rich wrapped lines at 80 columns."""
    note = "n" * 150
    repo = JobRepository(sqlite_url)
    try:  # recorded, not run: the listing is what is under test
        JobOperator(repo).launch(JobRegistry().load(NUMBERS).only(), {"count": 3, "note": note})
    finally:
        repo.dispose()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    for args in (("executions",), ("show", "1")):
        listed = subprocess.run(
            [sys.executable, "-m", "baton", *args, "--db", sqlite_url],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        assert f"count=3 note={note}" in listed.stdout, listed.stdout


# ---------------------------------------------------------------- fencing


def test_a_fenced_run_exits_8_with_one_line(sqlite_url: str) -> None:
    """`recover --force` ends an execution whose `baton run` is in fact alive on
    another host: that process must exit 8 (fenced), not 7 ("cannot finish"). The
    executor's logic is the same on both backends; SQLite keeps the test short."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", NUMBERS, "-p", "count=3000", "--no-progress"],
        cwd=ROOT,
        env=dict(os.environ, BATON_DB_URL=sqlite_url, BATON_TEST_SLEEP="0.002"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("Execution 1 "), first
    repo = JobRepository(sqlite_url)
    try:
        deadline = time.monotonic() + 60
        while not any(s.commit_count >= 2 for s in repo.step_executions(1)):
            assert time.monotonic() < deadline and proc.poll() is None, "no progress"
            time.sleep(0.05)
        with repo.engine.begin() as c:  # as if it ran on another host
            c.execute(text("UPDATE baton_job_execution SET owner = 'elsewhere:1:1'"))
        recovered = invoke("recover", "1", "--force", db=sqlite_url)
        assert recovered.returncode == 0, recovered.stderr
        _, stderr = proc.communicate(timeout=60)
        errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
        assert errors == [
            "error: execution 1 was ended by someone else while this process ran it "
            "(recovered or declared lost): it is FAILED; nothing more was recorded"
        ], stderr
        assert "Traceback" not in stderr
        assert proc.returncode == ExitCode.FATAL, stderr
        assert repo.get_execution(1).status is BatchStatus.FAILED
    finally:
        if proc.poll() is None:
            proc.kill()
        repo.dispose()
