"""The CRDs of both kinds, generated from the pydantic models (one source of truth for
the API server's validation, the operator and the CLI).

``python -m baton_operator.k8s.crdgen crds/ charts/baton/crds`` rewrites the checked-in
CRD YAML; a test fails when it is stale.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from baton.schedule.model import ScheduleSpec
from baton.spec.model import JobSpec
from pydantic import BaseModel

from baton_operator.k8s.resources import (
    GROUP,
    JOBS_PLURAL,
    PLURAL,
    VERSION,
    ExecutionSpec,
    ExecutionStatus,
    JobStatus,
)
from baton_operator.k8s.schedule_resources import SCHEDULES_PLURAL, ScheduleStatus


def structural(model: type[BaseModel], *, mode: Literal["validation", "serialization"]) -> Any:
    """The pydantic JSON schema of ``model`` as a Kubernetes structural schema:
    $refs inlined, nullables flattened, no titles or defaults (pydantic applies those),
    free-form mappings marked ``x-kubernetes-preserve-unknown-fields``."""
    raw = model.model_json_schema(by_alias=True, mode=mode)
    defs = raw.pop("$defs", {})

    def conv(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return conv(merged)
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            types = {o.get("type") for o in options}
            if len(options) == 1:
                return conv({**options[0], **rest})
            if types == {"integer", "string"}:
                return conv({**rest, "x-kubernetes-int-or-string": True})
            return conv({**rest, "x-kubernetes-preserve-unknown-fields": True})
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "default"):
                continue
            if key == "const":
                out["enum"] = [value]
            elif key == "properties":
                out["properties"] = {k: conv(v) for k, v in value.items()}
            elif key == "items":
                out["items"] = conv(value)
            elif key == "additionalProperties":
                if value is True:
                    out["x-kubernetes-preserve-unknown-fields"] = True
                elif isinstance(value, dict):
                    out["additionalProperties"] = conv(value)
            else:
                out[key] = value
        if not out.get("type") and not out.get("x-kubernetes-int-or-string"):
            if "enum" in out:
                out["type"] = "string"
            else:
                out["x-kubernetes-preserve-unknown-fields"] = True
        if (
            out.get("type") == "object"
            and "properties" not in out
            and "additionalProperties" not in out
        ):
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    return conv(raw)


PODSPEC = Path(__file__).with_name("podspec_schema.json")
# template.spec field → (podspec_schema.json definition, list of it?)
TEMPLATE_FIELDS: dict[str, tuple[str, bool]] = {
    "resources": ("resources", False),
    "env": ("envVar", True),
    "envFrom": ("envFromSource", True),
    "volumes": ("volume", True),
    "volumeMounts": ("volumeMount", True),
    "tolerations": ("toleration", True),
    "affinity": ("affinity", False),
    "topologySpreadConstraints": ("topologySpreadConstraint", True),
    "imagePullSecrets": ("localObjectReference", True),
    "securityContext": ("securityContext", False),
    "podSecurityContext": ("podSecurityContext", False),
    "initContainers": ("container", True),
    "sidecars": ("container", True),
}


# Baton's contract, checked at apply time too (the operator checks again at launch).
CONTRACT_RULES = {
    "env": ("self.all(e, !e.name.startsWith('BATON_'))", "env names BATON_* are Baton's"),
    "initContainers": ("self.all(c, c.name != 'step')", "the container 'step' is Baton's"),
    "sidecars": ("self.all(c, c.name != 'step')", "the container 'step' is Baton's"),
}


class Flow(dict[str, Any]):
    """A schema rendered in YAML flow style: the deep Kubernetes types in block style
    would be mostly indentation (several times the CRD's size)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def _brief(node: Any) -> Any:
    """``node`` without descriptions."""
    if isinstance(node, dict):
        return {k: _brief(v) for k, v in node.items() if k != "description"}
    return node


def pod_template_schema(generated: dict[str, Any], *, brief: bool = False) -> dict[str, Any]:
    """The pydantic schema of a pod template with its Kubernetes fields replaced by the
    real core/v1 schemas (podspec_schema.json, from scripts/k8s_schemas.py); ``brief``
    (the per-step copies) without the Kubernetes descriptions, to keep the CRD small."""
    defs = json.loads(PODSPEC.read_text())["definitions"]
    out = copy.deepcopy(generated)
    props = out["properties"]["spec"]["properties"]
    for name, (definition, many) in TEMPLATE_FIELDS.items():
        schema = copy.deepcopy(_brief(defs[definition]) if brief else defs[definition])
        schema["description"] = props[name].get("description") or schema.get("description", "")
        props[name] = Flow({"type": "array", "items": schema} if many else schema)
    if brief:  # inside the steps list: the rules' estimated cost would exceed the budget
        return out
    for name, (rule, message) in CONTRACT_RULES.items():
        props[name]["x-kubernetes-validations"] = [_rule(rule, message)]
        props[name]["maxItems"] = 256
    props["env"]["items"]["properties"]["name"]["maxLength"] = 256
    props["initContainers"]["items"]["properties"]["name"]["maxLength"] = 63
    props["sidecars"]["items"]["properties"]["name"]["maxLength"] = 63
    labels = out["properties"]["metadata"]["properties"]["labels"]
    labels["maxProperties"] = 64
    labels["x-kubernetes-validations"] = [
        _rule("self.all(k, !k.startsWith('baton.dev/'))", "labels baton.dev/* are Baton's")
    ]
    return out


def _splice_templates(node: Any, depth: int = 0) -> None:
    """Replace every ``template`` property (job, steps, branches, callbacks, launch);
    only the top one (depth 0) keeps the descriptions ``kubectl explain`` shows."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and "template" in props:
            props["template"] = pod_template_schema(props["template"], brief=depth > 0)
        for key, value in node.items():
            _splice_templates(value, depth + (key == "properties"))
    elif isinstance(node, list):
        for value in node:
            _splice_templates(value, depth)


def _rule(rule: str, message: str, reason: str | None = None) -> dict[str, Any]:
    out = {"rule": rule, "message": message}
    if reason:
        out["reason"] = reason
    return out


def _job_spec_schema() -> dict[str, Any]:
    spec: dict[str, Any] = structural(JobSpec, mode="validation")
    _splice_templates(spec)
    spec["description"] = "What to run: parameters, steps and how to restart them."
    steps = spec["properties"]["steps"]
    steps["x-kubernetes-list-type"] = "map"
    steps["x-kubernetes-list-map-keys"] = ["name"]
    steps["items"].setdefault("x-kubernetes-validations", []).append(
        _rule(
            "has(self.parallel) ? !has(self.tasklet) && !has(self.chunk)"
            " : has(self.tasklet) != has(self.chunk)",
            "a step needs exactly one of 'tasklet' or 'chunk' (a parallel group neither)",
        )
    )
    params = spec["properties"]["parameters"]
    params["x-kubernetes-list-type"] = "map"
    params["x-kubernetes-list-map-keys"] = ["name"]
    return spec


def _execution_spec_schema() -> dict[str, Any]:
    spec: dict[str, Any] = structural(ExecutionSpec, mode="validation")
    _splice_templates(spec)
    props = spec["properties"]
    props["template"]["x-kubernetes-validations"] = [
        _rule("self == oldSelf", "spec.template is immutable; create a new BatchExecution")
    ]
    props["job"]["x-kubernetes-validations"] = [
        _rule("self == oldSelf", "spec.job is immutable; create a new BatchExecution")
    ]
    # a map or a list (module docstring of valuefrom): untyped for the CRD, so CRD CEL
    # cannot see it; the chart's ValidatingAdmissionPolicy checks shape and immutability
    props["parameters"] = {
        "description": props["parameters"]["description"],
        "x-kubernetes-preserve-unknown-fields": True,
    }
    props["restart"]["x-kubernetes-validations"] = [
        _rule("self >= oldSelf", "spec.restart can only be increased (bump it to restart)")
    ]
    props["abandon"]["x-kubernetes-validations"] = [
        _rule("self || !oldSelf", "spec.abandon cannot be undone")
    ]
    return spec


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "baton"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["baton", "all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def crds() -> dict[str, dict[str, Any]]:
    """file name → CRD manifest, for each kind."""
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    job_status = structural(JobStatus, mode="serialization")
    job_status["description"] = str(JobStatus.__doc__)
    batch_job = _crd(
        "BatchJob",
        JOBS_PLURAL,
        "bj",
        _job_spec_schema(),
        job_status,
        [
            {"name": "Executions", "type": "integer", "jsonPath": ".status.executions"},
            {"name": "Last", "type": "string", "jsonPath": ".status.lastExecution"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.lastPhase"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
            age,
        ],
        "A job definition: typed parameters and steps (tasklets or chunk steps), run "
        "by creating BatchExecutions.",
    )
    status = structural(ExecutionStatus, mode="serialization")
    status["description"] = str(ExecutionStatus.__doc__)
    batch_execution = _crd(
        "BatchExecution",
        PLURAL,
        "bx",
        _execution_spec_schema(),
        status,
        [
            {"name": "Job", "type": "string", "jsonPath": ".spec.job"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt", "priority": 1},
            {
                "name": "Execution",
                "type": "integer",
                "jsonPath": ".status.jobExecutionId",
                "priority": 1,
            },
            age,
        ],
        "One launch of a BatchJob with parameters. Patch spec.stop, spec.abandon or "
        "bump spec.restart to control it; status mirrors the job repository.",
    )
    return {
        "baton.dev_batchjobs.yaml": batch_job,
        "baton.dev_batchexecutions.yaml": batch_execution,
        "baton.dev_batchschedules.yaml": _schedule_crd(age),
    }


def _schedule_crd(age: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = structural(ScheduleSpec, mode="validation")
    _splice_templates(spec)
    spec["description"] = "When to launch which job: one BatchExecution per window."
    status = structural(ScheduleStatus, mode="serialization")
    status["description"] = str(ScheduleStatus.__doc__)
    crd = _crd(
        "BatchSchedule",
        SCHEDULES_PLURAL,
        "bs",
        spec,
        status,
        [
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
            {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
            {"name": "Last", "type": "string", "jsonPath": ".status.lastScheduledWindow"},
            {"name": "Next", "type": "string", "jsonPath": ".status.nextWindow"},
            {"name": "Active", "type": "string", "jsonPath": ".status.active"},
            age,
        ],
        "A schedule of a BatchJob: a BatchExecution per window of its cron expressions, "
        "each window exactly one job instance (an identifying parameter).",
    )
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["x-kubernetes-validations"] = [
        _rule(
            "self.metadata.name.size() <= 50",
            "a BatchSchedule's name has at most 50 characters (its executions are "
            "named <schedule>-<window>)",
        )
    ]
    return crd


HEADER = (
    "# Generated from the pydantic models by `python -m baton_operator.k8s.crdgen`; do not edit.\n"
)


def render() -> dict[str, str]:
    """file name → YAML text of each CRD."""
    return {
        name: HEADER + yaml.dump(crd, Dumper=_Dumper, sort_keys=False, width=1 << 16)
        for name, crd in crds().items()
    }


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for target in sys.argv[1:] or ["crds"]:
        for p in write(Path(target)):
            print(p)
