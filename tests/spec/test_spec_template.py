"""The pod template overlay at our level: unknown keys and Baton's contract fields are
refused when the manifest is read (locally `baton run` exits 5 with one line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from baton.core.errors import InvalidDefinition
from baton.core.status import ExitCode
from baton.spec.manifests import parse_job
from baton.spec.template import PodTemplate
from conftest import baton_in_process
from pydantic import ValidationError


def job(template: dict[str, Any] | None = None, step: dict[str, Any] | None = None) -> Any:
    s = {"name": "work", "tasklet": "m:f", **({"template": step} if step else {})}
    spec = {"steps": [s], **({"template": template} if template else {})}
    return {"apiVersion": "baton.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "j"},
            "spec": spec}  # fmt: skip


def test_a_typed_template_round_trips() -> None:
    t = {
        "metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}},
        "spec": {
            "resources": {"limits": {"example.com/gpu": "1"}},
            "env": [{"name": "REGION", "value": "eu"}],
            "envFrom": [{"secretRef": {"name": "creds"}}],
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"pool": "gpu"},
            "sidecars": [{"name": "proxy", "image": "envoy"}],
        },
    }
    parsed = parse_job(job(t, {"spec": {"nodeSelector": {"zone": "b"}}}))
    assert parsed.spec.template is not None and parsed.spec.template.dump() == t
    step = parsed.spec.step("work")
    assert step.template is not None and step.template.dump() == {
        "spec": {"nodeSelector": {"zone": "b"}}
    }


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ({"spec": {"command": ["sh"]}}, "spec.template.spec.command: Extra inputs"),
        ({"spec": {"restartPolicy": "Always"}}, "spec.template.spec.restartPolicy: Extra"),
        ({"spec": {"env": [{"name": "BATON_DB_URL", "value": "x"}]}}, "BATON_DB_URL is Baton's"),
        ({"spec": {"sidecars": [{"name": "step", "image": "x"}]}}, "may not be named 'step'"),
        ({"spec": {"initContainers": [{"name": "step"}]}}, "may not be named 'step'"),
        ({"metadata": {"labels": {"baton.dev/step": "x"}}}, "label baton.dev/step is Baton's"),
        ({"spec": {"env": [{"value": "x"}]}}, "every env entry needs a name"),
        ({"podSpecPatch": "{}"}, "spec.template.podSpecPatch: Extra inputs"),
    ],
)
def test_contract_fields_and_unknown_keys_are_refused(template: Any, needle: str) -> None:
    with pytest.raises(InvalidDefinition) as e:
        parse_job(job(template))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_step_template_is_checked_too() -> None:
    with pytest.raises(InvalidDefinition, match=r"spec.steps.0.template: template: env BATON_X"):
        parse_job(job(step={"spec": {"env": [{"name": "BATON_X", "value": "1"}]}}))


def test_the_model_alone_refuses() -> None:
    with pytest.raises(ValidationError):
        PodTemplate.model_validate({"spec": {"args": ["x"]}})


def test_baton_run_exits_5_on_a_bad_template(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: baton.dev/v1alpha1\nkind: BatchJob\nmetadata: {name: j}\n"
        "spec:\n  steps:\n    - name: work\n      tasklet: m:f\n"
        "      template: {spec: {env: [{name: BATON_DB_URL, value: x}]}}\n"
    )
    r = baton_in_process("run", str(path), db=f"sqlite:///{tmp_path}/db.sqlite")
    assert r.returncode == ExitCode.INVALID, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "BATON_DB_URL is Baton's" in lines[0]
