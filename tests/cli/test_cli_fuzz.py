"""Fuzzing the inputs a person types: mutated manifests, parameter values of every type
and database URLs. Whatever they are, `baton` answers with one line on stderr and a
documented exit code, and a refused launch records nothing.

The CLI runs in this process (``baton.cli.main`` with ``sys.argv``, as the console
script does) to keep a hundred examples per property fast; test_cli_bad_input runs the real
entry point in subprocesses for the cases that need one.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from baton import ExitCode, JobOperator, JobRepository
from baton.core.errors import InvalidParameters, LaunchRejected
from baton.core.parameters import ParamType
from baton.spec.manifests import load_manifests
from conftest import baton_in_process as invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_bad_input import executions

pytestmark = pytest.mark.slow

REFUSED = {ExitCode.USAGE, ExitCode.REJECTED, ExitCode.INVALID, ExitCode.DATABASE}
FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

CODE = """\
def noop(ctx):
    return None

class Reader:
    def __init__(self, path=None):
        self.path = path

    def read(self):
        return None

class Writer:
    def write(self, items):
        pass
"""

BASE: dict[str, Any] = {
    "apiVersion": "baton.dev/v1alpha1",
    "kind": "BatchJob",
    "metadata": {"name": "fuzz"},
    "spec": {
        "incrementer": "run.id",
        "parameters": [
            {"name": "x", "type": "int", "identifying": True},
            {"name": "stop", "type": "string"},  # never passed: a valid launch is refused
        ],
        "steps": [
            {"name": "a", "tasklet": "fuzzcode:noop"},
            {
                "name": "b",
                "chunk": {
                    "reader": "fuzzcode:Reader",
                    "writer": "fuzzcode:Writer",
                    "size": 5,
                    "skip": ["ValueError"],
                    "skipLimit": 1,
                    "readerArgs": {"path": "in.txt"},
                },
                "partitions": {"count": 2},
            },
        ],
        "onFailure": {"name": "c", "tasklet": "fuzzcode:noop"},
    },
}


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in ``doc`` (keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += paths(v, (*prefix, i))
    return found


ALL_PATHS = paths(BASE)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()
    | st.text(alphabet=st.characters(exclude_categories=()), max_size=12)
    | st.sampled_from(["", "a:b", "os:getcwd", "fuzzcode:Reader", "BatchJob", "-1", "\x00"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """BASE with one to three fields dropped, renamed or given another value."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]]  # the path may be gone after an earlier mutation
        except (KeyError, IndexError, TypeError):
            continue
        op = draw(st.sampled_from(["drop", "rename", "replace"]))
        last = path[-1]
        if op == "drop":
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = parent.pop(last)
        else:
            parent[last] = draw(values)
    return doc


def assert_one_line(r: Any, before: int, db: str) -> None:
    """Refused: one ``error:`` line, a documented code, nothing recorded. Or it was a
    valid launch after all: then it ran (one execution more) without a traceback."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if r.returncode in (ExitCode.COMPLETED, ExitCode.FAILED) and executions(db) == before + 1:
        assert "Traceback" not in r.stderr, r.stderr
        return
    assert r.returncode in REFUSED, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "internal error" not in lines[0], lines[0]
    assert executions(db) == before, "a refused launch recorded an execution"


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    (tmp_path / "fuzzcode.py").write_text(CODE)
    return tmp_path


@FUZZ
@given(doc=mutated(), raw=st.none() | st.binary(max_size=64) | st.text(max_size=64))
def test_mutated_manifests(sqlite_url: str, job_dir: Path, doc: dict[str, Any], raw: Any) -> None:
    manifest = job_dir / "fuzz.yaml"
    if raw is None:
        manifest.write_text(yaml.safe_dump(doc))  # non-ASCII, NUL, surrogates: escaped
    elif isinstance(raw, bytes):
        manifest.write_bytes(raw)
    else:
        manifest.write_text(raw, errors="surrogatepass")
    before = executions(sqlite_url)
    r = invoke("run", str(manifest), "-p", "x=1", "--no-progress", db=sqlite_url)
    assert_one_line(r, before, sqlite_url)


PARAM_TEXT = (
    st.text(alphabet=st.characters(exclude_categories=()), max_size=20)
    | st.integers().map(str)
    | st.integers(min_value=2**62, max_value=2**200).map(lambda n: str(n * (-1) ** (n % 2)))
    | st.floats().map(repr)
    | st.dates().map(str)
    | st.datetimes().map(lambda d: d.isoformat())
    | st.sampled_from(
        [
            "nan",
            "-inf",
            "Infinity",
            "1e999",
            "1e308",
            "\x00",
            "a\udcff",
            str(2**63),
            str(2**63 - 1),
            str(-(2**63)),
            str(-(2**63) - 1),
            "9" * 5000,
            "2024-02-30",
            "2024-01-01T25:00",
            "yes",
            "",
        ]
    )
)


@settings(FUZZ, max_examples=30)  # per backend
@given(kind=st.sampled_from(list(ParamType)), identifying=st.booleans(), value=PARAM_TEXT)
def test_parameter_values(
    db_url: str, job_dir: Path, kind: ParamType, identifying: bool, value: str
) -> None:
    """Every value is refused by the CLI (``stop`` is never given), for its own sake or
    for the missing one; a value the definition accepts is stored and read back as it
    was typed (the library launch records it)."""
    manifest = job_dir / f"p-{kind.value}-{identifying}.yaml"
    if not manifest.exists():
        doc = copy.deepcopy(BASE)
        doc["spec"]["parameters"][0].update(type=kind.value, identifying=identifying)
        manifest.write_text(yaml.safe_dump(doc))
    before = executions(db_url)
    r = invoke("run", str(manifest), "-p", f"x={value}", "--no-progress", db=db_url)
    assert_one_line(r, before, db_url)
    assert r.returncode == ExitCode.INVALID
    job = load_manifests(manifest)[0]
    try:
        bound = job.spec.bind({"x": value, "stop": "s"})
    except InvalidParameters:
        assert "parameter 'x'" in r.stderr, r.stderr
        return
    assert "missing required parameter 'stop'" in r.stderr, r.stderr
    repo = JobRepository(db_url)
    try:
        launched = JobOperator(repo).launch(job, {"x": value, "stop": "s"}, source_dir=job_dir)
        stored = repo.get_execution(launched.id).parameters["x"]
    except LaunchRejected:  # the same value drawn twice: that instance is running
        return
    finally:
        repo.dispose()
    typed = bound["x"].value
    assert stored.value == typed or (isinstance(typed, float) and math.isnan(typed)), value
    assert stored.identifying is identifying


HOSTS = st.sampled_from(["127.0.0.1", "localhost", "[::1", "[::1]", "", "h st", "@", "%zz"])
PORTS = st.sampled_from(["1", "0", "65536", "99999999999", "-1", "notaport", ""]) | st.text(
    alphabet="abc:/@[]%?#", max_size=4
)
SECRET = "s3cr3t-Pw"


@st.composite
def urls(draw: st.DrawFn) -> str:
    """Garbage database URLs that reach no real server and create files only here."""
    kind = draw(st.sampled_from(["pg", "sqlite", "scheme", "text"]))
    if kind == "pg":
        scheme = draw(
            st.sampled_from(["postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg"])
        )
        user = draw(st.sampled_from(["", "u", f"u:{SECRET}", f"u:{SECRET}@x", ":"]))
        at = "@" if user else ""
        host, port = draw(HOSTS), draw(PORTS)
        db = draw(st.text(max_size=6))
        return f"{scheme}://{user}{at}{host}:{port}/{db}"
    if kind == "sqlite":
        tail = draw(
            st.sampled_from([":memory:", "", "/", "a/b/c.db", "?mode=ro", "\x00"])
            | st.text(alphabet=st.characters(exclude_characters="/"), max_size=10)
        )
        return f"sqlite:///{tail}"
    if kind == "scheme":
        scheme = draw(st.sampled_from(["mysql", "http", "oracle", "", "sqlite+nodriver", "x y"]))
        return f"{scheme}://{draw(st.text(max_size=12))}"
    return str(draw(st.text(alphabet=st.characters(exclude_characters="/"), max_size=16)))


@settings(FUZZ, max_examples=40)
@given(url=urls())
def test_database_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """A URL that works lists the (empty) repository; any other is one line, exit 5 or
    6, and never shows the password."""
    monkeypatch.chdir(tmp_path)  # a relative SQLite path lands here
    r = invoke("jobs", "--db", url, db=None)
    if r.returncode == ExitCode.COMPLETED:
        assert r.stderr == "", r.stderr
        return
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode in (ExitCode.INVALID, ExitCode.DATABASE), (url, r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (url, r.stderr)
    assert "internal error" not in lines[0], (url, lines[0])
    assert SECRET not in r.stderr, (url, r.stderr)
