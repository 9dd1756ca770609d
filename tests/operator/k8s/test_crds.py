"""The CRDs are generated from the pydantic models; the checked-in copies must match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from baton_operator.k8s.crdgen import crds, render
from baton_operator.k8s.resources import BatchExecution

ROOT = Path(__file__).resolve().parents[3]
FIX = "regenerate with: python -m baton_operator.k8s.crdgen crds charts/baton/crds"


@pytest.mark.parametrize("directory", ["crds", "charts/baton/crds"])
def test_checked_in_crds_are_fresh(directory: str) -> None:
    for name, text in render().items():
        path = ROOT / directory / name
        assert path.exists(), f"{path} missing; {FIX}"
        assert path.read_text() == text, f"{path} is stale; {FIX}"


def _walk(node: Any, path: str = "") -> list[str]:
    """Paths of schema nodes that are not structural (no type, no escape hatch)."""
    bad = []
    if isinstance(node, dict):
        if not (
            node.get("type")
            or node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        ):
            bad.append(path or "/")
        for forbidden in ("$ref", "anyOf", "title", "default", "const"):
            if forbidden in node:
                bad.append(f"{path}:{forbidden}")
        for k, v in (node.get("properties") or {}).items():
            bad += _walk(v, f"{path}.{k}")
        if isinstance(node.get("items"), dict):
            bad += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            bad += _walk(node["additionalProperties"], f"{path}{{}}")
    return bad


def test_schemas_are_structural() -> None:
    for crd in crds().values():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _walk(schema) == []


def test_execution_crd_shape() -> None:
    crd = crds()["baton.dev_batchexecutions.yaml"]
    assert crd["spec"]["names"]["shortNames"] == ["bx"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Job", "Phase", "Progress", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {
        k: [r["rule"] for r in v.get("x-kubernetes-validations", [])]
        for k, v in spec["properties"].items()
    }
    assert rules["job"] == ["self == oldSelf"]
    assert rules["parameters"] == []  # a map or a list: the chart's admission policy's
    assert spec["properties"]["parameters"]["x-kubernetes-preserve-unknown-fields"] is True
    assert rules["restart"] == ["self >= oldSelf"]
    assert all(v.get("description") for v in spec["properties"].values())
    jobs = crds()["baton.dev_batchjobs.yaml"]
    assert jobs["spec"]["names"]["shortNames"] == ["bj"]


def test_example_execution_parses() -> None:
    for path in (ROOT / "examples").glob("*/execution.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            bx = BatchExecution.model_validate(doc)
            assert bx.spec.job


def test_every_batch_status_has_a_phase() -> None:
    from baton.core.status import BatchStatus
    from baton_operator.k8s.resources import Phase

    for status in BatchStatus:
        phase = Phase.of(status)
        assert phase.terminal == (status.terminal), status
