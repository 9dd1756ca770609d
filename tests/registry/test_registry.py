"""JobRegistry: ``@baton.job`` definitions (from a module or a .py file) are the same
BatchJob as the equivalent YAML manifest; lookups fail with clear messages."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import baton
import pytest
from baton import InvalidDefinition, JobRegistry, UnknownJob
from baton.core.errors import ImportFailed

# One job written twice: as decorated Python and as a manifest. ``{mod}`` is the module
# name the Python is imported under (its functions are referenced as ``{mod}:name``).
JOB_PY = """
import baton


class Transient(Exception):
    pass


def validate(ctx):
    return "ok"


class Reader:
    def __init__(self, params, path="in.csv"):
        self.path = path

    def read(self):
        return None


def enrich(item):
    return item


class Writer:
    def write(self, items):
        pass


@baton.job(
    parameters=[
        baton.param("date", "date"),
        baton.param("chunkSize", "int", identifying=False, default=100),
        baton.param("dryRun", "bool", identifying=False, default=False),
    ],
    incrementer="run.id",
)
def import_orders():
    return [
        baton.tasklet("validate", validate, strict=True),
        baton.chunk(
            "load",
            reader=Reader,
            processor=enrich,
            writer=Writer,
            size=500,
            skip_limit=10,
            skip=[ValueError, KeyError],
            retry_limit=3,
            retry=[Transient],
            reader_args={"path": "orders.csv"},
            allow_start_if_complete=True,
        ),
    ]


@baton.job("cleanup", prevent_restart=True)
def cleanup_job():
    return [baton.tasklet("sweep", validate)]


NOT_A_JOB = 42
"""

JOB_YAML = """
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: import-orders}}
spec:
  incrementer: run.id
  parameters:
    - {{name: date, type: date}}
    - {{name: chunkSize, type: int, identifying: false, default: 100}}
    - {{name: dryRun, type: bool, identifying: false, default: false}}
  steps:
    - name: validate
      tasklet: {mod}:validate
      taskletArgs: {{strict: true}}
    - name: load
      allowStartIfComplete: true
      chunk:
        reader: {mod}:Reader
        readerArgs: {{path: orders.csv}}
        processor: {mod}:enrich
        writer: {mod}:Writer
        size: 500
        skipLimit: 10
        skip: [ValueError, KeyError]
        retryLimit: 3
        retry: ["{mod}:Transient"]
---
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: cleanup}}
spec:
  preventRestart: true
  steps:
    - {{name: sweep, tasklet: "{mod}:validate"}}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory for job code; the ``reg_*`` modules imported from it are
    forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    saved_path = list(sys.path)
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("reg_")]:
        del sys.modules[name]
    sys.path[:] = saved_path


def write_job_code(folder: Path, module: str) -> Path:
    path = folder / f"{module}.py"
    path.write_text(textwrap.dedent(JOB_PY))
    return path


def manifest_jobs(folder: Path, module: str) -> dict[str, dict[str, object]]:
    path = folder / f"{module}.yaml"
    path.write_text(JOB_YAML.format(mod=module))
    registry = JobRegistry().load(str(path))
    return {name: registry.get(name).job.dump() for name in registry.names()}


def test_decorated_module_is_the_same_job_as_the_manifest(workdir: Path) -> None:
    write_job_code(workdir, "reg_orders_mod")
    registry = JobRegistry().load("reg_orders_mod")  # an importable module name

    assert registry.names() == ["cleanup", "import-orders"]
    expected = manifest_jobs(workdir, "reg_orders_mod")
    for name in registry.names():
        assert registry.get(name).job.dump() == expected[name]
    assert registry.get("import-orders").source_dir == workdir.resolve()


def test_decorated_file_is_the_same_job_as_the_manifest(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    code_dir = tmp_path_factory.mktemp("code")
    path = write_job_code(code_dir, "reg_orders_file")
    registry = JobRegistry().load(str(path))  # a .py file outside the working directory

    expected = manifest_jobs(workdir, "reg_orders_file")
    assert {n: registry.get(n).job.dump() for n in registry.names()} == expected
    assert registry.get("cleanup").source_dir == code_dir.resolve()
    # The dump is a valid manifest again: the round trip is lossless.
    job = registry.get("import-orders").job
    assert baton.BatchJob.model_validate(job.dump()) == job


def test_the_test_jobs_decorated_definition_matches_its_manifest_shape() -> None:
    registry = JobRegistry().load("testjobs")
    job = registry.only("decorated-numbers").job
    assert job.spec.incrementer == "run.id"
    load = job.spec.step("load")
    assert load.chunk is not None
    assert (load.chunk.reader, load.chunk.writer) == (
        "testjobs:NumbersReader",
        "testjobs:OutWriter",
    )


def test_only_picks_the_single_job_or_the_named_one(workdir: Path) -> None:
    write_job_code(workdir, "reg_only_mod")
    registry = JobRegistry().load("reg_only_mod")
    assert registry.only("cleanup").name == "cleanup"
    single = JobRegistry()
    single.register(registry.get("cleanup").job)
    assert single.only().name == "cleanup"
    assert single.only(None).name == "cleanup"


def test_only_with_several_jobs_asks_to_choose(workdir: Path) -> None:
    write_job_code(workdir, "reg_several_mod")
    registry = JobRegistry().load("reg_several_mod")
    with pytest.raises(UnknownJob) as e:
        registry.only()
    assert str(e.value) == "several jobs defined (cleanup, import-orders); choose one with --job"


def test_only_with_an_unknown_name_lists_the_known_ones(workdir: Path) -> None:
    write_job_code(workdir, "reg_unknown_mod")
    registry = JobRegistry().load("reg_unknown_mod")
    with pytest.raises(UnknownJob) as e:
        registry.only("import")
    assert str(e.value) == "unknown job 'import'; known jobs: cleanup, import-orders"
    with pytest.raises(UnknownJob, match="known jobs: none"):
        JobRegistry().get("anything")


def test_only_on_an_empty_registry_says_so() -> None:
    with pytest.raises(UnknownJob, match=r"^no jobs defined: load a manifest"):
        JobRegistry().only()


def test_chunk_turns_exception_classes_into_names() -> None:
    class Local(Exception):
        pass

    step = baton.chunk(
        "load",
        reader="m:R",
        writer="m:W",
        skip=[ValueError, "pkg.mod:Custom", ImportFailed],
        retry=[ConnectionError, OSError],
    )
    assert step.chunk is not None
    assert step.chunk.skip == ["ValueError", "pkg.mod:Custom", "baton.core.errors:ImportFailed"]
    assert step.chunk.retry == ["ConnectionError", "OSError"]
    with pytest.raises(InvalidDefinition, match="not a module-level"):
        baton.chunk("load", reader="m:R", writer="m:W", skip=[Local])


def test_decorator_refs_and_names() -> None:
    from testjobs import NumbersReader, OutWriter, prepare, process

    step = baton.chunk("load", reader=NumbersReader, writer=OutWriter, processor=process)
    assert step.chunk is not None
    assert step.chunk.processor == "testjobs:process"
    assert baton.tasklet("prep", prepare).tasklet == "testjobs:prepare"
    with pytest.raises(InvalidDefinition, match="not a module-level"):
        baton.tasklet("lambda", lambda ctx: None)

    @baton.job()
    def nightly_import() -> list[baton.StepSpec]:
        return [baton.tasklet("prep", prepare)]

    registry = JobRegistry()
    (entry,) = registry.discover([nightly_import, 42, "text"], None)
    assert entry.name == "nightly-import"  # underscores become hyphens


def test_a_bad_decorated_definition_fails_with_the_job_name(workdir: Path) -> None:
    (workdir / "reg_bad_mod.py").write_text(
        textwrap.dedent(
            """
            import baton

            def t(ctx):
                pass

            @baton.job("twice")
            def twice():
                return [baton.tasklet("a", t), baton.tasklet("a", t)]
            """
        )
    )
    with pytest.raises(InvalidDefinition, match=r"job 'twice': .*duplicate step name 'a'"):
        JobRegistry().load("reg_bad_mod")


def test_load_errors_are_clear(workdir: Path) -> None:
    with pytest.raises(InvalidDefinition, match=r"no such manifest: missing\.yaml"):
        JobRegistry().load("missing.yaml")
    with pytest.raises(InvalidDefinition, match=r"no such file: missing\.py"):
        JobRegistry().load("missing.py")
    with pytest.raises(ImportFailed, match="cannot import 'no_such_module_xyz'"):
        JobRegistry().load("no_such_module_xyz")
    (workdir / "reg_empty_mod.py").write_text("X = 1\n")
    with pytest.raises(InvalidDefinition, match=r"no @baton\.job definitions found"):
        JobRegistry().load("reg_empty_mod.py")
    (workdir / "reg_raises_mod.py").write_text("raise RuntimeError('broken at import')\n")
    with pytest.raises(ImportFailed, match="RuntimeError: broken at import"):
        JobRegistry().load(str(workdir / "reg_raises_mod.py"))
