from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from baton.cli.options import parse_cli_params
from baton.core.errors import InvalidDefinition, InvalidParameters
from baton.spec.manifests import load_manifests, parse_job
from conftest import ROOT

ISSUE_SHAPE = ROOT / "examples" / "orders" / "job.yaml"


def minimal(**spec: object) -> dict[str, object]:
    base: dict[str, object] = {"steps": [{"name": "a", "tasklet": "m:f"}]}
    base.update(spec)
    return {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "j"},
        "spec": base,
    }


def test_issue_manifest_shape_loads() -> None:
    [job] = load_manifests(ISSUE_SHAPE)
    assert job.name == "import-orders"
    assert job.spec.incrementer == "run.id"
    load = job.spec.step("load")
    assert load.chunk is not None
    assert load.chunk.size == 500
    assert load.chunk.skip == ["ValueError"]
    assert load.chunk.retry == ["orders.io:TransientError"]
    assert load.chunk.retry_limit == 3
    params = job.spec.bind({"date": "2026-01-01"})
    assert params["date"].value == dt.date(2026, 1, 1)
    assert params["chunkSize"].value == 100
    assert not params["chunkSize"].identifying


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (minimal(steps=[]), "spec.steps"),
        (minimal(steps=[{"name": "a"}]), "exactly one of 'tasklet' or 'chunk'"),
        (minimal(steps=[{"name": "a", "tasklet": "not-a-ref"}]), "spec.steps.0.tasklet"),
        (
            minimal(steps=[{"name": "a", "tasklet": "m:f"}, {"name": "a", "tasklet": "m:g"}]),
            "duplicate step name 'a'",
        ),
        (
            minimal(parameters=[{"name": "d", "type": "date", "default": "soon"}]),
            "default of parameter 'd'",
        ),
        (minimal(bogus=1), "spec.bogus"),
        ({"kind": "Deployment"}, "expected BatchJob"),
        (
            minimal(steps=[{"name": "a", "chunk": {"reader": "m:R", "writer": "m:W", "size": 0}}]),
            "size",
        ),
    ],
)
def test_bad_manifests_say_where(doc: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidDefinition, match=needle.replace("(", r"\(")):
        parse_job(doc)


def test_bad_yaml(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("spec: [unclosed\n")
    with pytest.raises(InvalidDefinition, match="not valid YAML"):
        load_manifests(p)
    with pytest.raises(InvalidDefinition, match="cannot read manifest"):
        load_manifests(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({}, "missing required parameter 'date'"),
        ({"date": "tomorrow"}, "parameter 'date': expected a date"),
        ({"date": "2026-01-01", "colour": "red"}, "unknown parameter.*colour"),
        ({"date": "2026-01-01", "chunkSize": "ten"}, "parameter 'chunkSize': expected an integer"),
    ],
)
def test_bind_errors(raw: dict[str, str], needle: str) -> None:
    [job] = load_manifests(ISSUE_SHAPE)
    with pytest.raises(InvalidParameters, match=needle):
        job.spec.bind(raw)


def test_cli_params() -> None:
    assert parse_cli_params(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(InvalidParameters, match="expected NAME=VALUE"):
        parse_cli_params(["novalue"])
