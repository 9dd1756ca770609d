"""Kopf handlers: thin. Each reads nothing itself; it asks the Operator to reconcile
the BatchExecution concerned, which reads the state, calls the pure reconciler and
applies its actions.

Run: ``kopf run -m baton_operator.handlers --all-namespaces --liveness=http://0.0.0.0:8080/healthz``
with BATON_DB_URL (from a Secret) and BATON_IMAGE in the environment.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from typing import Any

import kopf
from baton.repository import JobRepository
from baton.resources import GROUP, TERMINAL_PHASES, VERSION

from baton_operator import metrics
from baton_operator.config import OperatorConfig
from baton_operator.kube import Cluster, Operator, load_kube_config
from baton_operator.manifests import LABEL_ATTEMPT, LABEL_EXECUTION

log = logging.getLogger("baton.operator")

_state: dict[str, Operator] = {}

TERMINAL = {p.value for p in TERMINAL_PHASES}


def operator() -> Operator:
    return _state["operator"]


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    cfg = OperatorConfig.from_env()
    url = os.environ.get("BATON_DB_URL")
    if not url:
        raise kopf.PermanentError("BATON_DB_URL is not set (the chart takes it from a Secret)")
    load_kube_config()
    _state["operator"] = Operator(JobRepository(url), Cluster(), cfg)
    metrics.serve(cfg.metrics_port)
    # Several replicas: one active, the others stand by (Kopf peering).
    # (`kopf run --standalone` for a single operator without the peering CRDs.)
    if not settings.peering.standalone:
        settings.peering.name = os.environ.get("BATON_PEERING", settings.peering.name)
        settings.peering.mandatory = True
        # Kopf freezes *all* peers of equal priority; replicas of one Deployment share
        # their arguments, so each draws its own: the highest works, the others wait.
        priority = os.environ.get("BATON_PEERING_PRIORITY", "")
        settings.peering.priority = int(priority) if priority else random.randint(1, 2**30)
        log.info("peering %s, priority %d", settings.peering.name, settings.peering.priority)
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = int(os.environ.get("BATON_WORKERS", "8"))
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = "baton.dev/operator"
    log.info("baton operator started; step image %s", cfg.image)


@kopf.on.cleanup()
def cleanup(**_: Any) -> None:
    op = _state.pop("operator", None)
    if op is not None:
        op.repo.dispose()


def _reconcile(namespace: str, name: str) -> str | None:
    return operator().reconcile(namespace, name)


@kopf.on.event(GROUP, VERSION, "batchexecutions")
def execution_event(
    type: str, name: str, namespace: str | None, status: kopf.Status, **_: Any
) -> None:
    """Any change of a BatchExecution (spec or status): reconcile it.
    Our own status patches come back here too and settle as no-ops."""
    assert namespace is not None
    if type == "DELETED":
        operator().deleted(namespace, name, dict(status))
        return
    _reconcile(namespace, name)


def _running(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in TERMINAL


@kopf.timer(GROUP, VERSION, "batchexecutions", interval=2.0, when=_running)
def execution_tick(name: str, namespace: str | None, **_: Any) -> None:
    """While an execution runs, mirror the repository's progress into .status."""
    assert namespace is not None
    _reconcile(namespace, name)


JOB_ENDS = frozenset({"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"})


def job_ended(
    type: str | None, status: Mapping[str, Any], meta: Mapping[str, Any], **_: Any
) -> bool:
    """Only a Job's end (or its deletion, or the first listing) can change a decision:
    while it runs, its pod counters change with every pod of an Indexed Job, and the
    progress they show is the repository's, mirrored by the timer. Skipping those
    events keeps the operator's work per execution flat in the number of partitions."""
    if type in (None, "DELETED") or meta.get("deletionTimestamp"):
        return True
    return any(
        c.get("type") in JOB_ENDS and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def disrupted(status: Mapping[str, Any], **_: Any) -> bool:
    """A pod condition DisruptionTarget=True: an eviction, drain or preemption."""
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_EXECUTION: kopf.PRESENT}, when=job_ended)
def job_event(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
    """A step Job ended or went away: reconcile its owner."""
    assert namespace is not None
    _reconcile(namespace, labels[LABEL_EXECUTION])


@kopf.on.event("", "v1", "pods", labels={LABEL_EXECUTION: kopf.PRESENT}, when=disrupted)
def pod_event(namespace: str | None, name: str, labels: kopf.Labels, **_: Any) -> None:
    """A step pod about to be evicted, drained or preempted (DisruptionTarget): record
    it, so a stop it causes can restart by itself (spec.autoRestart.onDisruption)."""
    assert namespace is not None  # only disrupted pods get here (when=disrupted)
    attempt = int(labels.get(LABEL_ATTEMPT, "0"))
    operator().record_disruption(namespace, labels[LABEL_EXECUTION], name, attempt)
