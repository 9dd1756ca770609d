"""The operator's side effects: reading the state (cluster + repository) and applying
the reconciler's actions. Everything here is thin; the decisions are in ``reconcile``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from baton.core.errors import (
    BatonError,
    InvalidDefinition,
    InvalidParameters,
    LaunchRejected,
    NoSuchExecution,
)
from baton.core.status import ABANDONABLE, BatchStatus
from baton.flow.engine import ABANDONED
from baton.flow.partitions import plan_partitions
from baton.repository import JobExecution, JobRepository
from baton.spec.model import BatchJob
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from baton_operator import metrics
from baton_operator.config import OperatorConfig
from baton_operator.k8s.resources import GROUP, VERSION, BatchExecution, Phase
from baton_operator.manifests import (
    ANNOTATION_PARTITIONS,
    LABEL_EXECUTION,
    LABEL_EXECUTION_ID,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_STEP,
    MANAGER,
)
from baton_operator.reconcile import (
    CHANGES_STATE,
    AbandonExecution,
    Action,
    CreateJob,
    DeletePods,
    Event,
    FailUnits,
    FinishExecution,
    Launch,
    MarkCompensating,
    Member,
    ObservedJob,
    PatchStatus,
    PlanStepPartitions,
    RepositoryState,
    RequestStop,
    StartExecution,
    iso,
    job_status,
    reconcile,
    set_condition,
)

log = logging.getLogger("baton.operator")

PLURAL = "batchexecutions"
JOBS_PLURAL = "batchjobs"
PROGRESS_FIELDS = frozenset({"progress", "readCount", "writeCount", "skipCount", "steps"})


def load_kube_config() -> None:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def open_step(
    repo: JobRepository,
    execution: JobExecution,
    step: str,
    partition: int | None = None,
    kind: str = "step",
) -> Any:
    """Open a unit's row for a unit whose pod never did (to record how it ended)."""
    return repo.open_step(execution, step, partition, worker=None, kind=kind)


def owner_tag(uid: str, restart: int, auto: int) -> str:
    """Recorded as the JobExecution's owner: lets a relaunch after an operator crash
    find the execution it already made instead of being rejected by it."""
    return f"k8s/{uid}/r{restart}/a{auto}"


class Cluster:
    """The few Kubernetes API calls the operator makes."""

    def __init__(self) -> None:
        self.core = client.CoreV1Api()
        self.batch = client.BatchV1Api()
        self.custom = client.CustomObjectsApi()

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
            return dict(obj)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def get_batch_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, JOBS_PLURAL, name
            )
            return dict(obj)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list_executions(self, namespace: str) -> list[dict[str, Any]]:
        found: Any = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return [dict(i) for i in found.get("items", [])]

    def patch_job_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, JOBS_PLURAL, name, {"status": patch}
        )
        metrics.API_WRITES.labels("patch", "batchjobs/status").inc()

    def list_jobs(self, namespace: str, execution: str) -> list[ObservedJob]:
        found: Any = self.batch.list_namespaced_job(
            namespace, label_selector=f"{LABEL_EXECUTION}={execution}"
        )
        out = []
        for j in found.items:
            labels = j.metadata.labels or {}
            parts = (j.metadata.annotations or {}).get(ANNOTATION_PARTITIONS, "")
            conds = {c.type: c for c in (j.status.conditions or []) if c.status == "True"}
            failed = conds.get("Failed")
            out.append(
                ObservedJob(
                    name=j.metadata.name,
                    step=labels.get(LABEL_STEP, ""),
                    execution_id=int(labels.get(LABEL_EXECUTION_ID, "0")),
                    kind=labels.get(LABEL_KIND, "step"),
                    partitions=tuple(int(p) for p in parts.split(",")) if parts else None,
                    active=j.status.active or 0,
                    succeeded=j.status.succeeded or 0,
                    failed=j.status.failed or 0,
                    complete="Complete" in conds,
                    failed_condition=failed is not None,
                    failed_reason=(failed.reason or "") if failed else "",
                    deleting=j.metadata.deletion_timestamp is not None,
                )
            )
        return out

    def create_job(self, manifest: dict[str, Any]) -> bool:
        try:
            self.batch.create_namespaced_job(
                manifest["metadata"]["namespace"],
                manifest,  # type: ignore[arg-type]
            )
            metrics.API_WRITES.labels("create", "jobs").inc()
            return True
        except ApiException as e:
            if e.status == 409:  # already there: an earlier reconcile made it
                return False
            raise

    def delete_step_jobs(self, namespace: str) -> int:
        """Delete the operator's Jobs in ``namespace`` (background propagation); how many.
        Forbidden (a namespace this operator does not serve) deletes nothing."""
        try:
            found: Any = self.batch.list_namespaced_job(
                namespace, label_selector=f"{LABEL_MANAGED_BY}={MANAGER}"
            )
        except ApiException as e:
            if e.status in (403, 404):
                return 0
            raise
        deleted = 0
        for j in found.items:
            if j.metadata.deletion_timestamp is not None:
                continue
            try:
                self.batch.delete_namespaced_job(
                    j.metadata.name, namespace, propagation_policy="Background"
                )
                metrics.API_WRITES.labels("delete", "jobs").inc()
                deleted += 1
            except ApiException as e:
                if e.status != 404:
                    raise
        return deleted

    def delete_pods(self, namespace: str, job_name: str) -> None:
        pods: Any = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}")
        for p in pods.items:
            if p.metadata.deletion_timestamp is None and p.status.phase in ("Pending", "Running"):
                try:
                    self.core.delete_namespaced_pod(p.metadata.name, namespace)
                    metrics.API_WRITES.labels("delete", "pods").inc()
                except ApiException as e:
                    if e.status != 404:
                        raise

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": patch}
        )
        metrics.API_WRITES.labels("patch", "batchexecutions/status").inc()

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        now = dt.datetime.now(dt.UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{meta['name']}.", namespace=meta["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind="BatchExecution",
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta["uid"],
                resource_version=meta.get("resourceVersion"),
            ),
            type=type_,
            reason=reason,
            message=message[:1000],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="baton-operator"),
            reporting_component="baton.dev/operator",
            reporting_instance="baton-operator",
        )
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
            metrics.API_WRITES.labels("create", "events").inc()
        except ApiException as e:  # an event is never worth failing a reconcile
            log.warning("could not post event %s on %s: %s", reason, meta["name"], e.reason)


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7396) from ``old`` to ``new``: changed keys, nulls for
    removed ones, recursing into objects (a merge patch merges them, not replaces)."""
    old = old or {}
    patch: dict[str, Any] = {}
    for k, v in new.items():
        was = old.get(k)
        if was == v:
            continue
        if isinstance(v, dict) and isinstance(was, dict):
            patch[k] = status_patch(was, v)
        else:
            patch[k] = v
    patch.update({k: None for k in old if k not in new})
    return patch


class Operator:
    """Reads the state of one BatchExecution, reconciles, applies: until it settles."""

    def __init__(self, repo: JobRepository, cluster: Cluster, cfg: OperatorConfig):
        self.repo = repo
        self.cluster = cluster
        self.config = cfg
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._last_patch: dict[tuple[str, str], float] = {}
        self._locks_guard = threading.Lock()
        # BatchJob .status: the executions of each (namespace, job) as last seen
        self._members: dict[tuple[str, str], dict[str, Member]] = {}
        self._listed: set[str] = set()  # namespaces whose executions were listed once
        self._dirty: set[tuple[str, str]] = set()
        self._job_status: dict[tuple[str, str], dict[str, Any]] = {}

    @contextmanager
    def _locked(self, namespace: str, name: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault((namespace, name), threading.Lock())
        with lock:
            yield

    def forget(self, namespace: str, name: str) -> None:
        with self._locks_guard:
            self._locks.pop((namespace, name), None)
            self._last_patch.pop((namespace, name), None)
            for key, members in self._members.items():
                if key[0] == namespace and members.pop(name, None) is not None:
                    self._dirty.add(key)
        metrics.observe_phase(namespace, name, "", None)

    # ------------------------------------------------------------ BatchJob status

    def _note(self, obj: dict[str, Any], phase: str | None) -> None:
        """Remember an execution's phase for its BatchJob's status and the metrics (the
        first time in a namespace, list all its executions, so counts are whole after a
        restart). Every phase the operator writes or reads passes here, once."""
        meta = obj["metadata"]
        namespace = meta["namespace"]
        job = str(obj["spec"]["job"])
        metrics.observe_phase(namespace, meta["name"], job, phase or Phase.PENDING.value)
        if namespace not in self._listed:
            self._listed.add(namespace)
            for other in self.cluster.list_executions(namespace):
                if other["metadata"]["name"] != meta["name"]:
                    self._note(other, (other.get("status") or {}).get("phase"))
        key = (namespace, job)
        member = Member(phase or "", str(meta.get("creationTimestamp") or ""))
        with self._locks_guard:
            members = self._members.setdefault(key, {})
            if members.get(meta["name"]) != member:
                members[meta["name"]] = member
                self._dirty.add(key)

    def _flush_job_status(self) -> None:
        """Write the ``.status`` of each BatchJob whose executions changed phase."""
        with self._locks_guard:
            dirty, self._dirty = self._dirty, set()
            wanted = {key: job_status(self._members.get(key, {})) for key in dirty}
        for (namespace, job), new in wanted.items():
            if self._job_status.get((namespace, job)) == new:
                continue
            obj = self.cluster.get_batch_job(namespace, job)
            if obj is None:
                continue
            patch = status_patch(obj.get("status"), new)
            if patch:
                self.cluster.patch_job_status(namespace, job, patch)
            self._job_status[(namespace, job)] = new

    def _patch_status(self, obj: dict[str, Any], patch: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.cluster.patch_status(meta["namespace"], meta["name"], patch)
        if "phase" in patch:
            self._note(obj, patch["phase"])

    def deleted(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """A BatchExecution was deleted (its Jobs and pods go with it): a JobExecution it
        left running is marked FAILED, so its instance can be launched again."""
        self.forget(namespace, name)
        self._flush_job_status()
        execution_id = status.get("jobExecutionId")
        if execution_id is None:
            return
        execution = self.repo.get_execution(int(execution_id))
        if not execution.status.running:
            return
        why = f"its BatchExecution {namespace}/{name} was deleted"
        self.repo.end_orphaned(execution, BatchStatus.FAILED, why, "recover")
        log.info("%s/%s deleted: JobExecution %s marked FAILED", namespace, name, execution.id)

    def release_namespace(self, namespace: str) -> int:
        """A namespace is being deleted: delete its step Jobs so that it can go.

        Kubernetes (OrderedNamespaceDeletion: on since 1.33, locked on in 1.34) deletes a
        namespace's pods first and deletes nothing else until they are gone. The Job
        controller keeps the ``batch.kubernetes.io/job-tracking`` finalizer on a failed
        pod of an Indexed Job with ``backoffLimitPerIndex`` until it has made the pod's
        replacement — and a terminating namespace refuses new pods. A step pod killed
        by the namespace's deletion (exit 9: continue) or failed just before would wait
        for ever, and the namespace with it. Once its Job is being deleted the Job
        controller releases the pod."""
        deleted = self.cluster.delete_step_jobs(namespace)
        if deleted:
            log.info("namespace %s is being deleted: deleted %d step Job(s)", namespace, deleted)
        return deleted

    # ------------------------------------------------------------ state

    def repository_state(self, execution_id: int | None) -> RepositoryState:
        if execution_id is None:
            return RepositoryState()
        execution = self.repo.get_execution(execution_id)
        previous = {key: s.status for key, s in self.repo.previous_steps(execution).items()}
        return RepositoryState(
            execution=execution,
            steps=tuple(self.repo.step_executions(execution_id)),
            previous=previous,
            partitions=self.repo.partition_counts(execution.instance_id),
        )

    # ------------------------------------------------------------ the loop

    def reconcile(self, namespace: str, name: str, *, max_rounds: int = 6) -> str | None:
        """Reconcile until nothing changes (bounded); return the phase ("" while it has
        none yet), or None when the BatchExecution is gone or being deleted."""
        start = time.monotonic()
        try:
            with self._locked(namespace, name):
                phase = None
                for _ in range(max_rounds):
                    obj = self.cluster.get_execution(namespace, name)
                    if obj is None or obj["metadata"].get("deletionTimestamp"):
                        self.forget(namespace, name)
                        phase = None
                        break
                    changed, phase = self._round(obj)
                    phase = phase or ""
                    if not changed:
                        break
            self._flush_job_status()
            return phase
        except Exception as e:
            metrics.RECONCILE_ERRORS.labels(type(e).__name__).inc()
            raise
        finally:
            metrics.RECONCILE_DURATION.observe(time.monotonic() - start)

    def _round(self, obj: dict[str, Any]) -> tuple[bool, str | None]:
        meta = obj["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        execution = BatchExecution.model_validate(
            {**obj, "metadata": {"name": name, "namespace": namespace}}
        )
        status = obj.get("status") or {}
        self._note(obj, status.get("phase"))
        job_obj = None
        job: BatchJob | None = None
        if status.get("jobExecutionId") is None:
            job_obj = self.cluster.get_batch_job(namespace, execution.spec.job)
            if job_obj is not None:
                job = self._parse_job(obj, job_obj)
                if job is None:
                    return False, status.get("phase")
        try:
            repo_state = self.repository_state(status.get("jobExecutionId"))
        except NoSuchExecution as e:
            self._lost(obj, str(e))
            return False, status.get("phase")
        jobs = (
            self.cluster.list_jobs(namespace, name)
            if repo_state.execution is not None and repo_state.execution.status.running
            else []
        )
        actions = reconcile(
            job,
            execution,
            repo_state,
            jobs,
            config=self.config,
            now=dt.datetime.now(dt.UTC),
            namespace=namespace,
            uid=uid,
            job_generation=(job_obj or {}).get("metadata", {}).get("generation"),
        )
        job_name = repo_state.execution.job_name if repo_state.execution else execution.spec.job
        if repo_state.execution is not None:
            metrics.observe_steps(job_name, repo_state.steps)
        changed = False
        for action in actions:
            if isinstance(action, PatchStatus):
                if changed:
                    continue  # stale: the next round computes it afresh
                patch = status_patch(status, action.status)
                if patch and self._due(namespace, name, patch):
                    self._patch_status(obj, patch)
                continue
            applied = self.apply(obj, action)
            changed |= applied and isinstance(action, CHANGES_STATE)
        return changed, status.get("phase")

    def _due(self, namespace: str, name: str, patch: dict[str, Any]) -> bool:
        """Progress-only changes (counts, percentages) are written at most every
        ``progress_seconds`` per execution, so API writes follow the phases, not the
        number of partitions or chunks; anything else is written at once."""
        now = time.monotonic()
        key = (namespace, name)
        recent = now - self._last_patch.get(key, float("-inf")) < self.config.progress_seconds
        if set(patch) <= PROGRESS_FIELDS and recent:
            return False
        self._last_patch[key] = now
        return True

    def _parse_job(self, obj: dict[str, Any], job_obj: dict[str, Any]) -> BatchJob | None:
        try:
            return BatchJob.model_validate(
                {
                    "apiVersion": job_obj["apiVersion"],
                    "kind": job_obj["kind"],
                    "metadata": {"name": job_obj["metadata"]["name"]},
                    "spec": job_obj["spec"],
                }
            )
        except Exception as e:  # pydantic rules the CRD schema cannot express
            self._reject(obj, "InvalidDefinition", f"BatchJob is invalid: {e}".splitlines()[0])
            return None

    # ------------------------------------------------------------ actions

    def apply(self, obj: dict[str, Any], action: Action) -> bool:
        """Apply one action; True when it changed something."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if isinstance(action, Launch):
            return self._launch(obj, action)
        if isinstance(action, StartExecution):
            if action.max_running is None:
                self.repo.transition(
                    action.execution_id,
                    BatchStatus.STARTED,
                    allowed=(BatchStatus.STARTING,),
                    action="start",
                    start=True,
                )
                return True
            execution = self.repo.get_execution(action.execution_id)
            admitted = self.repo.admit(
                execution,
                max_running=action.max_running,
                cooldown_seconds=action.cooldown_seconds,
                waiting_alive=lambda e: True,
                owner=execution.owner or "k8s",
            )
            if not admitted:
                status = obj.get("status") or {}
                if status.get("phase") != Phase.QUEUED.value:
                    self._patch_status(obj, {"phase": Phase.QUEUED.value})
                    self.cluster.event(
                        obj,
                        "Normal",
                        "Queued",
                        f"waiting: at most {action.max_running} running at once"
                        + (
                            f", {action.cooldown_seconds:g}s between starts"
                            if action.cooldown_seconds
                            else ""
                        ),
                    )
            return admitted
        if isinstance(action, CreateJob):
            created = self.cluster.create_job(action.manifest)
            if created:
                log.info("%s/%s: created Job %s", ns, name, action.name)
            return created
        if isinstance(action, RequestStop):
            self.repo.transition(
                action.execution_id,
                BatchStatus.STOPPING,
                allowed=(BatchStatus.STARTING, BatchStatus.STARTED, BatchStatus.STOPPING),
                action="stop",
            )
            return True
        if isinstance(action, DeletePods):
            self.cluster.delete_pods(ns, action.job_name)
            return False
        if isinstance(action, FailUnits):
            self._fail_units(action)
            return True
        if isinstance(action, PlanStepPartitions):
            execution = self.repo.get_execution(action.execution_id)
            job = BatchJob.model_validate(execution.job_spec)
            n = plan_partitions(self.repo, execution, job, action.step)
            log.info("%s/%s: step %s has %d partitions", ns, name, action.step, n)
            return True
        if isinstance(action, MarkCompensating):
            self.repo.transition(
                action.execution_id,
                BatchStatus.COMPENSATING,
                allowed=(
                    BatchStatus.STARTED,
                    BatchStatus.STOPPING,
                    BatchStatus.COMPENSATING,
                ),
                action="compensate",
            )
            return True
        if isinstance(action, FinishExecution):
            self.repo.finish(action.execution_id, action.status, action.description)
            return True
        if isinstance(action, AbandonExecution):
            self.repo.transition(
                action.execution_id,
                BatchStatus.COMPENSATING if action.compensate else BatchStatus.ABANDONED,
                allowed=ABANDONABLE,
                action="abandon",
                exit_code=ABANDONED,
                description="abandoned; compensating" if action.compensate else None,
                end=not action.compensate,
            )
            return True
        if isinstance(action, Event):
            self.cluster.event(obj, action.type, action.reason, action.message)
            return False
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover

    def _fail_units(self, action: FailUnits) -> None:
        execution = self.repo.get_execution(action.execution_id)
        rows = {
            st.partition: st
            for st in self.repo.step_executions(execution.id)
            if st.step_name == action.step and getattr(st, "kind", "step") == action.kind
        }
        for part in action.partitions:
            row = rows.get(part)
            if row is None:
                row = open_step(self.repo, execution, action.step, part, action.kind)
            if row.status.running:
                self.repo.finish_step(
                    row,
                    action.status,
                    exit_code=action.status.value,
                    description=action.description,
                )

    def _find_launched(self, job_name: str, tag: str) -> JobExecution | None:
        for e in self.repo.executions(job=job_name, limit=50):
            if e.owner == tag:
                return e
        return None

    def _launch(self, obj: dict[str, Any], action: Launch) -> bool:
        meta = obj["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        status = dict(obj.get("status") or {})
        conditions = list(status.get("conditions") or [])
        now = dt.datetime.now(dt.UTC)
        tag = owner_tag(uid, action.observed_restart, action.auto_restarts)
        first = action.reason == "Launched"
        try:
            job = BatchJob.model_validate(action.job_spec)
            execution = self._find_launched(job.name, tag)
            if execution is None:
                params = action.params or job.spec.bind(dict(action.raw_params or {}))
                execution = self.repo.launch(
                    job.name,
                    action.job_spec,
                    params,
                    prevent_restart=job.spec.prevent_restart,
                    source_dir=None,
                    owner=tag,
                    context=action.context,
                )
        except (LaunchRejected, InvalidParameters, InvalidDefinition) as e:
            rule = e.rule if isinstance(e, LaunchRejected) else type(e).__name__
            message = str(e)
            if first:
                self._reject(obj, rule, message, observed_restart=action.observed_restart)
            else:
                conditions = set_condition(conditions, "Restarted", "False", rule, message, now)
                self.cluster.patch_status(
                    ns,
                    name,
                    {"conditions": conditions, "observedRestart": action.observed_restart},
                )
                self.cluster.event(obj, "Warning", "RestartRejected", message)
            return False
        conditions = [c for c in conditions if c.get("type") not in ("Rejected", "Restarted")]
        conditions = set_condition(
            conditions,
            "Launched",
            "True",
            action.reason,
            f"JobExecution {execution.id} (attempt {execution.attempt}) "
            f"of instance {execution.instance_id}",
            now,
        )
        new = {
            "phase": Phase.of(execution.status).value,
            "jobExecutionId": execution.id,
            "instanceId": execution.instance_id,
            "attempt": execution.attempt,
            "observedRestart": action.observed_restart,
            "autoRestarts": action.auto_restarts or None,
            "jobGeneration": action.job_generation,
            "conditions": conditions,
            "steps": [],
            "progress": "0%",
        }
        keep = {"disruptedAttempt", "disruptedPod"}
        patch = status_patch({k: v for k, v in status.items() if k not in keep}, new)
        self._patch_status(obj, patch)
        self.cluster.event(
            obj,
            "Normal",
            action.reason,
            f"JobExecution {execution.id}, attempt {execution.attempt}, "
            f"instance {execution.instance_id}",
        )
        log.info("%s/%s: %s JobExecution %s", ns, name, action.reason.lower(), execution.id)
        return True

    def _reject(
        self, obj: dict[str, Any], rule: str, message: str, observed_restart: int | None = None
    ) -> None:
        status = dict(obj.get("status") or {})
        now = dt.datetime.now(dt.UTC)
        conditions = set_condition(
            list(status.get("conditions") or []), "Launched", "False", rule, message, now
        )
        patch: dict[str, Any] = {
            "phase": Phase.REJECTED.value,
            "conditions": conditions,
            "exitDescription": message,
        }
        if observed_restart is not None:
            patch["observedRestart"] = observed_restart
        self._patch_status(obj, patch)
        if status.get("phase") != Phase.REJECTED.value or observed_restart:
            self.cluster.event(obj, "Warning", "Rejected", message)

    def _lost(self, obj: dict[str, Any], why: str) -> None:
        """The status names a JobExecution the repository does not have (the database
        was replaced or restored): say so once, instead of failing every reconcile."""
        status = dict(obj.get("status") or {})
        if any(c.get("reason") == "ExecutionLost" for c in status.get("conditions") or []):
            return
        message = f"{why}: the job repository lost this execution (database replaced?)"
        conditions = set_condition(
            list(status.get("conditions") or []),
            "Launched",
            "False",
            "ExecutionLost",
            message,
            dt.datetime.now(dt.UTC),
        )
        patch = {"phase": Phase.FAILED.value, "conditions": conditions, "exitDescription": message}
        self._patch_status(obj, patch)
        self.cluster.event(obj, "Warning", "ExecutionLost", message)

    # ------------------------------------------------------------ disruptions

    def record_disruption(self, namespace: str, execution: str, pod: str, attempt: int) -> None:
        obj = self.cluster.get_execution(namespace, execution)
        if obj is None:
            return
        status = obj.get("status") or {}
        if status.get("disruptedPod") == pod:
            return
        self.cluster.patch_status(
            namespace, execution, {"disruptedPod": pod, "disruptedAttempt": attempt}
        )
        self.cluster.event(obj, "Warning", "Disrupted", f"pod {pod} is being disrupted")


__all__ = [
    "BatonError",
    "Cluster",
    "Operator",
    "iso",
    "load_kube_config",
    "owner_tag",
    "status_patch",
]
