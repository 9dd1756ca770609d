"""``baton validate``: a valid job exits 0 with an OK line (or JSON); every problem —
schema, parameters, imports, component roles — exits 5 with one ``error:`` line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from baton.cli.validate import MANIFEST_ENV, pod_manifest
from conftest import JOBS
from conftest import baton_in_process as invoke

NUMBERS = str(JOBS / "numbers.yaml")

JOB = """\
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: {name}}}
spec:
  parameters:
    - {{name: day, type: date}}
    - {{name: count, type: int, default: 3}}
  steps:
    - name: load
      chunk: {{reader: {module}:Reader, writer: {module}:{writer}, size: 2}}
"""

CODE = """\
class Reader:
    def read(self):
        return None

class Writer:
    def write(self, items):
        pass

class NoWrite:
    def flush(self):
        pass
"""


def write_job(tmp_path: Path, name: str, writer: str = "Writer", module: str = "") -> str:
    module = module or f"valmod_{name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(CODE)
    path = tmp_path / f"{name}.yaml"
    path.write_text(JOB.format(name=name, module=module, writer=writer))
    return str(path)


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_valid_manifest_exits_0_with_ok_line(tmp_path: Path) -> None:
    path = write_job(tmp_path, "good")
    r = invoke("validate", path, "-p", "day=2026-01-02", db=None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "OK: job 'good' is valid (1 step(s))"


def test_valid_manifest_as_json_reports_bound_parameters() -> None:
    r = invoke("validate", NUMBERS, "-p", "count=5", "--json", db=None)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["valid"] is True
    assert report["job"] == "numbers"
    assert report["parameters"] == {"count": 5, "note": "-"}
    assert report["steps"] == ["prepare", "load", "check"]


def test_bad_schema_exits_5(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: BatchJob\nmetadata: {name: bad}\nspec: {steps: [{name: a}]}\n")
    r = invoke("validate", str(path), db=None)
    assert r.returncode == 5
    assert "invalid BatchJob" in one_error_line(r.stderr)


def test_unknown_parameter_exits_5(tmp_path: Path) -> None:
    path = write_job(tmp_path, "unknown-param")
    r = invoke("validate", path, "-p", "day=2026-01-02", "-p", "colour=red", db=None)
    assert r.returncode == 5
    assert "unknown parameter(s) colour" in one_error_line(r.stderr)


def test_missing_required_parameter_exits_5(tmp_path: Path) -> None:
    path = write_job(tmp_path, "missing-param")
    r = invoke("validate", path, db=None)
    assert r.returncode == 5
    assert "missing required parameter 'day'" in one_error_line(r.stderr)


def test_bad_parameter_type_exits_5(tmp_path: Path) -> None:
    path = write_job(tmp_path, "bad-type")
    r = invoke("validate", path, "-p", "day=2026-01-02", "-p", "count=many", db=None)
    assert r.returncode == 5
    assert "parameter 'count'" in one_error_line(r.stderr)


def test_unimportable_reference_exits_5(tmp_path: Path) -> None:
    path = write_job(tmp_path, "no-module")
    text = Path(path).read_text().replace("valmod_no_module:Reader", "nosuchmod_xyz:Reader")
    Path(path).write_text(text)
    r = invoke("validate", path, "-p", "day=2026-01-02", db=None)
    assert r.returncode == 5
    assert "nosuchmod_xyz" in one_error_line(r.stderr)


def test_writer_without_write_exits_5(tmp_path: Path) -> None:
    path = write_job(tmp_path, "no-write", writer="NoWrite")
    r = invoke("validate", path, "-p", "day=2026-01-02", db=None)
    assert r.returncode == 5
    line = one_error_line(r.stderr)
    assert "writer" in line and "no write() method" in line


def test_manifest_from_env_validates_that_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pod of ``--image`` runs: the manifest arrives in an env var."""
    path = write_job(tmp_path, "from-env")
    monkeypatch.chdir(tmp_path)  # the image's working dir holds the code
    monkeypatch.setenv(MANIFEST_ENV, Path(path).read_text())
    r = invoke("validate", "--manifest-from-env", "-", "-p", "day=2026-01-02", db=None)
    assert r.returncode == 0, r.stderr
    assert "job 'from-env' is valid" in r.stdout


def test_image_needs_a_yaml_manifest() -> None:
    r = invoke("validate", "some.module", "--image", "baton:x", db=None)
    assert r.returncode == 5
    assert "expected a YAML manifest" in one_error_line(r.stderr)


def test_pod_manifest_runs_validate_on_the_env_manifest() -> None:
    pod = pod_manifest("v-1", "img:1", "kind: BatchJob\n", ["--param", "a=1"], "/code")
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    c = spec["containers"][0]
    assert c["image"] == "img:1"
    assert c["command"] == ["baton", "validate", "--manifest-from-env", "-", "--param", "a=1"]
    assert c["env"] == [{"name": MANIFEST_ENV, "value": textwrap.dedent("kind: BatchJob\n")}]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["workingDir"] == "/code"
