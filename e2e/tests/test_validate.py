"""Validation before launch on the real cluster: the API server refuses a BatchExecution
that breaks the CRD's CEL rules at ``kubectl apply``, and ``baton validate --image``
checks a job inside the project image through a short-lived pod (exit 0 / 5), leaving
no pod behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Kubectl

pytestmark = pytest.mark.e2e

NUMBERS = REPO / "examples" / "numbers" / "job.yaml"
CODE_DIR = "/opt/baton/examples/numbers"  # where the image holds the example's code


def execution(ns: str, name: str, spec: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchExecution",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"job": "count-numbers", **spec},
    }
    return json.dumps(doc)


def apply(kubectl: Kubectl, manifest: str) -> subprocess.CompletedProcess[str]:
    return kubectl.run("apply", "-f", "-", input=manifest, check=False)


def validate(kubectl: Kubectl, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baton", "validate", "--kubeconfig", kubectl.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        cwd=REPO,
    )


def test_cel_rules_and_validate_in_image(
    kubectl: Kubectl, namespace: str, project_image: str, tmp_path: Path
) -> None:
    # the CRD as generated now (Helm never upgrades CRDs of an installed chart)
    kubectl(
        "apply", "--server-side", "--force-conflicts",
        "-f", str(REPO / "crds" / "baton.dev_batchexecutions.yaml"),
    )  # fmt: skip
    kubectl("wait", "--for=condition=Established", "crd/batchexecutions.baton.dev")

    both = {"configMapKeyRef": {"name": "c", "key": "k"}, "secretKeyRef": {"name": "s", "key": "k"}}
    refused = apply(
        kubectl,
        execution(
            namespace, "two-sources", {"parameterSources": [{"name": "a", "valueFrom": both}]}
        ),
    )
    assert refused.returncode != 0
    assert "exactly one of configMapKeyRef or secretKeyRef" in refused.stderr

    twice = {"name": "count", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
    spec = {"parameters": {"count": 3}, "parameterSources": [twice]}
    refused = apply(kubectl, execution(namespace, "given-twice", spec))
    assert refused.returncode != 0
    assert "given both in parameters and in parameterSources" in refused.stderr

    ok = apply(kubectl, execution(namespace, "fine", {"parameterSources": [twice]}))
    assert ok.returncode == 0, ok.stderr
    kubectl("-n", namespace, "delete", "bx", "fine", "--wait=false")

    common = ["--image", project_image, "-n", namespace, "--working-dir", CODE_DIR]
    good = validate(kubectl, str(NUMBERS), "-p", "count=3", *common)
    assert good.returncode == 0, good.stderr
    assert "OK: job 'count-numbers' is valid" in good.stdout
    assert f"(in image {project_image})" in good.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text(NUMBERS.read_text().replace("counting:NumbersWriter", "counting:Nope"))
    bad = validate(kubectl, str(broken), "-p", "count=3", *common)
    assert bad.returncode == 5, bad.stdout + bad.stderr
    lines = bad.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: in image "), bad.stderr
    assert "counting has no 'Nope'" in lines[0]

    kubectl.wait_until(
        "the validation pods deleted",
        lambda: kubectl.json("-n", namespace, "get", "pods")["items"] == [],
        timeout=60,
    )
