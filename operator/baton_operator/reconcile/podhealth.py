"""Why a step pod cannot start, as a condition on its BatchExecution.

A pod whose Secret is missing (``CreateContainerConfigError``), whose image cannot be
pulled (``ErrImagePull``/``ImagePullBackOff``) or that no node can take
(``PodScheduled=False``, ``Unschedulable``) never runs its step, so the repository
never hears of it and the execution would show ``Running 0%`` and nothing else. The
condition ``PodsReady`` says why, in the pod's own words: status False, the pod's
reason, message ``"<pod>: <the pod's message>"``; it turns True when that pod starts
after all (the Secret created, the image pushed, a node added). A new attempt starts
without it (:func:`baton_operator.reconcile.outcomes.launched`). Pure: the operator's
pod handler reads the pod, these decide."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from baton_operator.k8s.resources import Condition, ExecutionStatus
from baton_operator.reconcile.actions import Action, Event, MergeStatus
from baton_operator.reconcile.conditions import set_condition

CONDITION = "PodsReady"
STARTED = "Started"
# Waiting reasons of a container that will not start by itself (a kubelet's retries
# aside): the user must act. ContainerCreating and PodInitializing are the normal way.
STUCK = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)


@dataclass(frozen=True)
class PodHealth:
    """What one pod says: started, or stuck with the kubelet's/scheduler's reason."""

    pod: str
    started: bool
    reason: str = ""
    message: str = ""


def _container_statuses(status: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from status.get("initContainerStatuses") or ()
    yield from status.get("containerStatuses") or ()


def _stuck(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of the first container that waits for something that will not
    come, or of the scheduler's refusal."""
    for c in _container_statuses(status):
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK:
            return str(waiting["reason"]), str(waiting.get("message") or "")
    for cond in status.get("conditions") or ():
        key = (cond.get("type"), cond.get("status"), cond.get("reason"))
        if key == ("PodScheduled", "False", "Unschedulable"):
            return "Unschedulable", str(cond.get("message") or "")
    return None


def _started(status: Mapping[str, Any]) -> bool:
    if status.get("phase") in ("Running", "Succeeded"):
        return True
    return any(
        "running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {})
        for c in status.get("containerStatuses") or ()
    )


def assess(pod: Mapping[str, Any]) -> PodHealth | None:
    """The pod's health; None while there is nothing to say (scheduling, pulling,
    creating its containers, or deleted)."""
    name = str(pod.get("metadata", {}).get("name", ""))
    status = pod.get("status") or {}
    stuck = _stuck(status)
    if stuck is not None:
        return PodHealth(name, started=False, reason=stuck[0], message=stuck[1])
    if _started(status):
        return PodHealth(name, started=True)
    return None


def _current(conditions: list[Condition]) -> Condition | None:
    return next((c for c in conditions if c.type == CONDITION), None)


def names(condition: Condition | None, pod: str) -> bool:
    return condition is not None and condition.message.startswith(f"{pod}: ")


def decide(
    status: ExecutionStatus, health: PodHealth, now: dt.datetime
) -> tuple[list[Action], bool]:
    """The status change (and event) one pod's health calls for, and whether the
    execution is left with a pod that cannot start (PodsReady False).

    A stuck pod sets the condition (and posts an event the first time it names this
    pod); a started pod clears it only when it is the pod the condition names — with
    parallel pods, another pod that runs says nothing about the stuck one."""
    found = list(status.conditions or [])
    old = _current(found)
    blocked = old is not None and old.status == "False"
    if health.started:
        if not (blocked and names(old, health.pod)):
            return [], blocked
        text = f"{health.pod}: started"
        conditions = set_condition(found, CONDITION, "True", STARTED, text, now)
        return [MergeStatus(ExecutionStatus(conditions=conditions).dump())], False
    text = f"{health.pod}: {health.message or health.reason}"
    if old is not None and (old.status, old.reason, old.message) == ("False", health.reason, text):
        return [], True
    conditions = set_condition(found, CONDITION, "False", health.reason, text, now)
    actions: list[Action] = [MergeStatus(ExecutionStatus(conditions=conditions).dump())]
    if not (blocked and names(old, health.pod)):  # once per stuck pod, not per back-off
        actions.append(Event("Warning", health.reason, text))
    return actions, True
