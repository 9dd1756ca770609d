"""Validation before launch on the real cluster: ``baton validate --image``
checks a job inside the project image through a short-lived pod (exit 0 / 5), leaving
no pod behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Kubectl

pytestmark = pytest.mark.e2e

NUMBERS = REPO / "examples" / "numbers" / "job.yaml"
CODE_DIR = "/opt/baton/examples/numbers"  # where the image holds the example's code


def validate(kubectl: Kubectl, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baton", "validate", "--kubeconfig", kubectl.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        cwd=REPO,
    )


def test_validate_in_image(
    kubectl: Kubectl, namespace: str, project_image: str, tmp_path: Path
) -> None:
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
