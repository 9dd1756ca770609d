"""The pod template overlay of a job, a step or an execution: typed at our level (unknown
keys refused, Baton's contract fields refused), the Kubernetes types inside left as
dicts — the API server validates those against the real core/v1 schemas in the CRD."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

STEP_CONTAINER = "step"
LABEL_PREFIX = "baton.dev/"
ENV_PREFIX = "BATON_"

K8sObject = dict[str, Any]


def hardened_container_security() -> K8sObject:
    """The securityContext of every container Baton starts (a step, a validation pod):
    no privilege escalation, read-only root filesystem, no capabilities. A template may
    relax one key explicitly; this is only the default."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class PodTemplateMeta(_Model):
    labels: dict[str, str] | None = Field(default=None, description="Extra pod labels.")
    annotations: dict[str, str] | None = Field(default=None, description="Extra annotations.")


class PodTemplateSpec(_Model):
    """The PodSpec fields a step pod may take; ``resources``, ``env``, ``envFrom``,
    ``volumeMounts`` and ``securityContext`` are the step container's."""

    resources: K8sObject | None = None
    env: list[K8sObject] | None = None
    env_from: list[K8sObject] | None = None
    volumes: list[K8sObject] | None = None
    volume_mounts: list[K8sObject] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[K8sObject] | None = None
    affinity: K8sObject | None = None
    topology_spread_constraints: list[K8sObject] | None = None
    priority_class_name: str | None = None
    service_account_name: str | None = None
    image_pull_secrets: list[K8sObject] | None = None
    security_context: K8sObject | None = None
    pod_security_context: K8sObject | None = None
    runtime_class_name: str | None = None
    init_containers: list[K8sObject] | None = None
    sidecars: list[K8sObject] | None = None


class PodTemplate(_Model):
    """Overlay merged over the step pod: chart defaults → job → step → execution."""

    metadata: PodTemplateMeta | None = None
    spec: PodTemplateSpec | None = None

    @model_validator(mode="after")
    def _keep_contract(self) -> PodTemplate:
        problem = contract_problem(self.dump())
        if problem:
            raise ValueError(problem)
        return self

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _named(items: Any, what: str) -> list[str]:
    names = []
    for item in items or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"template: every {what} needs a name")
        names.append(item["name"])
    return names


def contract_problem(template: dict[str, Any]) -> str | None:
    """Why ``template`` (wire form) would break Baton's step pod, or None: it may not
    set Baton's env (``BATON_*``), labels (``baton.dev/*``) or replace the step
    container; command, args and restartPolicy are not template fields at all."""
    spec = template.get("spec") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    try:
        env = _named(spec.get("env"), "env entry")
        containers = _named(spec.get("initContainers"), "init container")
        containers += _named(spec.get("sidecars"), "sidecar")
    except ValueError as e:
        return str(e)
    baton_env = sorted(n for n in env if n.startswith(ENV_PREFIX))
    if baton_env:
        return f"template: env {', '.join(baton_env)} is Baton's (names {ENV_PREFIX}* are reserved)"
    if STEP_CONTAINER in containers:
        return f"template: a container may not be named '{STEP_CONTAINER}' (the step container)"
    ours = sorted(k for k in labels if k.startswith(LABEL_PREFIX))
    if ours:
        return f"template: label {', '.join(ours)} is Baton's ({LABEL_PREFIX}* are reserved)"
    return None
