r"""batch/v1 Job manifests for steps: pure functions of names, ids and settings.

Every step runs as an Indexed Job, so the exit-code contract maps the same way for a
plain step (one index) and a partitioned one (index i → the i-th pending partition):

=====  =========  ======================================================
exit   meaning    podFailurePolicy
=====  =========  ======================================================
0      completed  (success)
1      failed     Count: retried up to backoffLimitPerIndex, resumes from
                  the last committed chunk
3      stopped    FailIndex: never retried
8      fatal      FailIndex (also 2 usage, 4 rejected, 5 invalid, 7 state)
9      continue   Ignore: the next incarnation continues, not counted
\-      disrupted  Ignore (pod condition DisruptionTarget): not counted
=====  =========  ======================================================

A pod that is deleted, evicted or drained gets SIGTERM: its step (told by
``BATON_EXECUTOR=kubernetes`` that it runs in a pod) finishes its chunk, checkpoints
and exits 9 unless the job is STOPPING, so the Job controller starts a new pod for
that index (``podReplacementPolicy: Failed``: once the old one has ended) which
resumes from the checkpoint; the other partitions keep running and no retry is spent.
Only ``spec.stop`` stops an execution.
"""

from __future__ import annotations

import hashlib
from typing import Any

from baton.core.status import ExitCode, UnitKind
from baton.spec.template import STEP_CONTAINER, hardened_container_security
from baton.step.entry import unit_argv

from baton_operator.config import OperatorConfig
from baton_operator.k8s.labels import (
    ANNOTATION_PARTITIONS,
    LABEL_ATTEMPT,
    LABEL_EXECUTION,
    LABEL_EXECUTION_ID,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_STEP,
    MANAGER,
)
from baton_operator.k8s.resources import API_VERSION
from baton_operator.podtemplate import apply_all

CONTAINER = STEP_CONTAINER
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# Indexed Job pods are named <job>-<index>-<random5>; their hostname <job>-<index> must
# stay a 63-character DNS label, so Job names are kept short.
MAX_JOB_NAME = 52

NOT_RETRIED = sorted(
    int(c)
    for c in (
        ExitCode.USAGE,
        ExitCode.STOPPED,
        ExitCode.REJECTED,
        ExitCode.INVALID,
        ExitCode.WRONG_STATE,
        ExitCode.FATAL,
    )
)


def _short_hash(*parts: object) -> str:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:6]


SUFFIX = {UnitKind.STEP: "", UnitKind.COMPENSATION: "-comp", UnitKind.CALLBACK: "-cb"}


def job_name(
    execution: str,
    attempt: int,
    step: str,
    partitions: tuple[int, ...] | None = None,
    kind: UnitKind = UnitKind.STEP,
) -> str:
    """Deterministic: the same (execution, attempt, step, partitions, kind) always gives
    the same name, so a restarted operator finds the Job instead of creating another."""
    base = f"{execution}-{attempt}-{step}{SUFFIX[kind]}"
    if partitions is not None:
        base = f"{base}-p{_short_hash(*partitions)}"
    if len(base) <= MAX_JOB_NAME:
        return base
    digest = _short_hash(execution, attempt, step, partitions, kind.value)
    return f"{base[: MAX_JOB_NAME - 7].rstrip('-.')}-{digest}"


def pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailIndex",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": NOT_RETRIED,
                },
            },
            {
                "action": "Ignore",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [int(ExitCode.CONTINUE)],
                },
            },
        ]
    }


def _env(
    config: OperatorConfig,
    grace: int,
    extra_env: dict[str, str] | None,
    partitions: tuple[int, ...] | None,
) -> list[dict[str, Any]]:
    """The step container's environment: the database URL only by Secret reference."""
    env: list[dict[str, Any]] = [
        {
            "name": "BATON_DB_URL",
            "valueFrom": {"secretKeyRef": {"name": config.db_secret, "key": config.db_secret_key}},
        },
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "BATON_WORKER", "value": "$(POD_NAME)@$(NODE_NAME)"},
        # SIGTERM in a pod means "this pod is going away": the step checkpoints and
        # exits 9 (continue in a new pod) unless the job is STOPPING (spec.stop).
        {"name": "BATON_EXECUTOR", "value": "kubernetes"},
        {"name": "BATON_TERMINATION_GRACE_SECONDS", "value": str(grace)},
        {"name": "BATON_LOG_FORMAT", "value": config.step_log_format},
    ]
    pooling = {"BATON_DB_POOL": config.step_db_pool, "BATON_DB_POOLER": config.step_db_pooler}
    env += [{"name": k, "value": v} for k, v in pooling.items() if v and k not in (extra_env or {})]
    env += [{"name": k, "value": v} for k, v in sorted((extra_env or {}).items())]
    if partitions is not None:
        env.append({"name": "BATON_PARTITIONS", "value": ",".join(str(p) for p in partitions)})
    return env


def _container(
    config: OperatorConfig,
    command: list[str],
    env: list[dict[str, Any]],
    image: str | None,
    working_dir: str | None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image or config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": command,
        "env": env,
        "resources": {
            "requests": {"cpu": config.step_cpu_request, "memory": config.step_memory_request},
            "limits": {"memory": config.step_memory_limit},
        },
        "securityContext": hardened_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if working_dir:
        container["workingDir"] = working_dir
    return container


def _pod_spec(container: dict[str, Any], grace: int, service_account: str | None) -> dict[str, Any]:
    """Non-root, read-only, no service links: a step pod runs user code."""
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": grace,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "enableServiceLinks": False,
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    return pod_spec


def _metadata(
    name: str,
    namespace: str,
    labels: dict[str, str],
    partitions: str,
    owner: tuple[str, str],
    queue: str | None,
) -> dict[str, Any]:
    """Labelled for selection, annotated with its partitions, owned by the
    BatchExecution ``owner`` (name, uid): deleting it deletes the Job."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**labels, **({QUEUE_LABEL: queue} if queue else {})},
        "annotations": {ANNOTATION_PARTITIONS: partitions},
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": "BatchExecution",
                "name": owner[0],
                "uid": owner[1],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def _lifetime(active_deadline_seconds: int | None, ttl: int | None) -> dict[str, Any]:
    """``activeDeadlineSeconds``: the last-resort hard stop of the execution's deadline;
    ``ttlSecondsAfterFinished``: how long the finished Job stays (see reconcile.retention)."""
    fields = {"activeDeadlineSeconds": active_deadline_seconds, "ttlSecondsAfterFinished": ttl}
    return {k: v for k, v in fields.items() if v is not None}


def _indexed(
    partitions: tuple[int, ...] | None,
    parallelism: int | None,
    backoff_limit_per_index: int,
    template: dict[str, Any],
) -> dict[str, Any]:
    """An Indexed Job's spec: one index per pending partition (one for a plain unit),
    exit codes mapped by the pod failure policy."""
    completions = 1 if partitions is None else len(partitions)
    return {
        "completionMode": "Indexed",
        "completions": completions,
        "parallelism": max(1, min(parallelism or completions, completions)),
        "backoffLimitPerIndex": backoff_limit_per_index,
        "podFailurePolicy": pod_failure_policy(),
        "podReplacementPolicy": "Failed",
        "template": template,
    }


def step_job(
    *,
    execution: str,
    namespace: str,
    uid: str,
    execution_id: int,
    attempt: int,
    step: str,
    config: OperatorConfig,
    image: str | None = None,
    partitions: tuple[int, ...] | None = None,
    parallelism: int | None = None,
    backoff_limit_per_index: int = 2,
    working_dir: str | None = None,
    service_account: str | None = None,
    stop_grace_seconds: int = 60,
    kind: UnitKind = UnitKind.STEP,
    partition: int | None = None,
    extra_env: dict[str, str] | None = None,
    secret_env: list[dict[str, Any]] | None = None,
    queue: str | None = None,
    templates: list[tuple[str, dict[str, Any] | None]] | None = None,
    active_deadline_seconds: int | None = None,
) -> dict[str, Any]:
    """The Job that runs ``step`` of JobExecution ``execution_id`` (all its pending
    ``partitions`` when given; one ``partition`` of a compensation), owned by the
    BatchExecution; the chart's stepDefaults and then ``templates`` (where, overlay)
    merged over its pod (:class:`~baton_operator.podtemplate.TemplateError` if one
    would override Baton's fields)."""
    units = partitions if partition is None else (partition,)
    grace = max(30, stop_grace_seconds)
    labels = {
        LABEL_EXECUTION: execution,
        LABEL_STEP: step,
        LABEL_KIND: kind.value,
        LABEL_ATTEMPT: str(attempt),
        LABEL_EXECUTION_ID: str(execution_id),
        LABEL_MANAGED_BY: MANAGER,
    }
    argv = unit_argv(
        execution_id, step, kind=kind, partition=partition, from_index=partitions is not None
    )
    env = _env(config, grace, extra_env, partitions) + list(secret_env or [])
    container = _container(config, ["baton", "step", *argv], env, image, working_dir)
    shown = partitions if partitions is not None else units
    annotation = "" if shown is None else ",".join(str(p) for p in shown)
    name = job_name(execution, attempt, step, units, kind)
    template = apply_all(
        {"metadata": {"labels": labels}, "spec": _pod_spec(container, grace, service_account)},
        [("stepDefaults", config.step_defaults), *(templates or [])],
    )
    spec = _indexed(partitions, parallelism, backoff_limit_per_index, template)
    spec |= _lifetime(active_deadline_seconds, config.step_ttl_at_creation)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(name, namespace, labels, annotation, (execution, uid), queue),
        "spec": spec,
    }
