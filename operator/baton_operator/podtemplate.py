"""Merging pod template overlays (chart stepDefaults → BatchJob → step → BatchExecution)
into a step pod, the way strategic merge patch does: lists by key, maps key-wise,
scalars last-wins. Pure: the pod in, the pod out; a template that would break Baton's
contract raises :class:`TemplateError` before anything is merged."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from baton.spec.model import JobSpec
from baton.spec.template import STEP_CONTAINER, contract_problem

# list field → the key its items merge by (None: appended)
LIST_KEYS: dict[str, str | None] = {
    "env": "name",
    "envFrom": None,
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "tolerations": None,
    "topologySpreadConstraints": None,
    "initContainers": "name",
    "sidecars": "name",
}
# template.spec field → where it lands: on the step container or the pod
CONTAINER_FIELDS = ("resources", "env", "envFrom", "volumeMounts", "securityContext")
POD_RENAMES = {"podSecurityContext": "securityContext", "sidecars": "containers"}


class TemplateError(ValueError):
    """A template that would override Baton's own fields."""


def merge_list(base: list[Any], over: list[Any], key: str | None) -> list[Any]:
    """Items of ``over`` replace (deep-merged) the items of ``base`` with the same key;
    new ones are appended in order."""
    if key is None:
        return [*base, *over]
    out = [copy.deepcopy(b) for b in base]
    for item in over:
        at = next((i for i, b in enumerate(out) if b.get(key) == item.get(key)), None)
        if at is None:
            out.append(copy.deepcopy(item))
        else:
            out[at] = merge_value(out[at], item, None)
    return out


def merge_value(base: Any, over: Any, field: str | None) -> Any:
    """Maps merge key-wise (recursively), keyed lists by key, anything else: ``over``."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = merge_value(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, list) and field in LIST_KEYS:
        return merge_list(base, over, LIST_KEYS[field])
    return copy.deepcopy(over)


def check(template: dict[str, Any], where: str) -> None:
    problem = contract_problem(template)
    if problem:
        raise TemplateError(f"{where}: {problem}")


def _split(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A template's spec as (step-container overlay, pod overlay)."""
    container = {k: v for k, v in spec.items() if k in CONTAINER_FIELDS}
    pod = {POD_RENAMES.get(k, k): v for k, v in spec.items() if k not in CONTAINER_FIELDS}
    return container, pod


def apply(pod: dict[str, Any], template: dict[str, Any], where: str) -> dict[str, Any]:
    """``pod`` (a pod template: metadata + spec with the step container first) with
    ``template`` merged over it."""
    check(template, where)
    container_over, pod_over = _split(template.get("spec") or {})
    out = copy.deepcopy(pod)
    spec = out["spec"]
    extra = pod_over.pop("containers", None)
    steps = [c for c in spec["containers"] if c["name"] == STEP_CONTAINER]
    others = [c for c in spec["containers"] if c["name"] != STEP_CONTAINER]
    step = merge_value(steps[0], container_over, None)
    others = merge_list(others, extra or [], "name")
    out["spec"] = {**merge_value(spec, pod_over, None), "containers": [step, *others]}
    out["metadata"] = merge_value(out["metadata"], template.get("metadata") or {}, None)
    return out


def apply_all(pod: dict[str, Any], layers: Iterable[tuple[str, dict[str, Any] | None]]) -> Any:
    """``pod`` with each (where, template) layer merged in order; the labels ``pod``
    starts with (Baton's selectors) always win."""
    ours = dict(pod["metadata"].get("labels") or {})
    for where, template in layers:
        if template:
            pod = apply(pod, template, where)
            pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), **ours}
    return pod


def step_layers(spec: JobSpec, step: str) -> list[tuple[str, dict[str, Any] | None]]:
    """The job's template, then the step's group's (a parallel member), then the step's."""
    layers: list[tuple[str, dict[str, Any] | None]] = []
    if spec.template is not None:
        layers.append(("BatchJob template", spec.template.dump()))
    for entry in spec.steps:
        grouped = entry.parallel is not None and any(m.name == step for m in entry.parallel)
        if grouped and entry.template is not None:
            layers.append((f"step '{entry.name}' template", entry.template.dump()))
    try:
        body = spec.step(step)
    except KeyError:
        return layers
    if body.template is not None:
        layers.append((f"step '{step}' template", body.template.dump()))
    return layers


def step_image(spec: JobSpec, step: str) -> str | None:
    """The step's own image, else the job's (None: the operator's)."""
    try:
        own = spec.step(step).image
    except KeyError:
        own = None
    return own or spec.image
