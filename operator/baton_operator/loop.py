"""The reconcile loop: for one BatchExecution, read the state (cluster + repository),
decide (:func:`baton_operator.reconcile.decide.reconcile`), apply — round after round
until nothing changes. Also the operator's answers to events that are not a
reconcile: an execution deleted, a namespace being deleted, a pod disrupted."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from baton.core.errors import NoSuchExecution
from baton.core.status import BatchStatus
from baton.repository import JobRepository
from baton.repository.states import ExecutionState
from baton.spec.manifests import first_error
from baton.spec.model import BatchJob
from baton.spec.snapshot import job_of
from pydantic import ValidationError

from baton_operator.applier import Applier, Target
from baton_operator.config import OperatorConfig
from baton_operator.jobstatus import JobStatuses
from baton_operator.k8s.cluster import Cluster
from baton_operator.k8s.resources import BatchExecution, ExecutionStatus
from baton_operator.metrics import (
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    observe_phase,
    observe_steps,
)
from baton_operator.patching import status_patch
from baton_operator.prefetch import Key, Prefetch, Stamp
from baton_operator.reconcile import foreign, outcomes, podhealth
from baton_operator.reconcile.actions import CHANGES_STATE, PatchStatus
from baton_operator.reconcile.decide import reconcile
from baton_operator.reconcile.podhealth import PodHealth
from baton_operator.reconcile.selector import Requirement, matches
from baton_operator.reconcile.state import RepositoryState
from baton_operator.retention import Retention

log = logging.getLogger("baton.operator")

# Status fields that only say how far an execution is (written at most every
# ``progress_seconds``); any other change is written at once.
PROGRESS_FIELDS = frozenset({"progress", "readCount", "writeCount", "skipCount", "steps"})


class Controller:
    """Reconciles BatchExecutions: reads the state of one, decides, applies, until it
    settles; one at a time per execution (a lock each), any number side by side."""

    def __init__(
        self,
        repo: JobRepository,
        cluster: Cluster,
        cfg: OperatorConfig,
        *,
        selector: tuple[Requirement, ...] = (),
        namespaces: frozenset[str] = frozenset(),
        retention: Retention | None = None,
    ) -> None:
        """``selector``, ``namespaces``: the labels and namespaces of the executions
        this operator owns (empty: all). ``retention``: told of every execution read,
        to delete the finished ones when their TTL is up."""
        self.repo = repo
        self.retention = retention
        self.cluster = cluster
        self.config = cfg
        self.selector = selector
        self.namespaces = namespaces
        self._warned: set[tuple[str, str, str]] = set()  # ForeignExecution sent once
        self.job_statuses = JobStatuses(cluster)
        self.applier = Applier(repo, cluster, self.job_statuses)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._last_patch: dict[tuple[str, str], float] = {}
        self._locks_guard = threading.Lock()
        self.prefetch = Prefetch(repo, self._stamp)

    def _stamp(self, key: Key) -> Stamp | None:
        """What a state read for the tick must still match to be used (see Prefetch);
        None when the execution is unknown or the cluster adapter cannot tell."""
        obj = self.cluster.get_execution(*key)
        generation = self.cluster.job_generation(*key)
        if obj is None or generation is None:
            return None
        version = obj["metadata"].get("resourceVersion")
        return version, generation, (obj.get("status") or {}).get("jobExecutionId")

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
        self.job_statuses.forget(namespace, name)
        self.prefetch.forget((namespace, name))
        if self.retention is not None:
            self.retention.forget(namespace, name)
        observe_phase(namespace, name, "", None)

    def deleted(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        job: str | None = None,
        uid: str | None = None,
    ) -> None:
        """A BatchExecution was deleted (its Jobs and pods go with it): a JobExecution it
        left running is marked FAILED, so its instance can be launched again — if it is
        this repository's (``job``, ``uid``: the deleted object's, for the check)."""
        self.forget(namespace, name)
        self.job_statuses.flush()
        st = ExecutionStatus.model_validate(status)
        if st.execution_id is None or foreign.foreign(st, self.repo.repository_id, job=None):
            return
        try:
            execution = self.repo.get_execution(st.execution_id)
        except NoSuchExecution:
            return
        if foreign.foreign(st, self.repo.repository_id, job=job, uid=uid, row=execution):
            return  # an id in another repository: not this execution
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

    def record_disruption(self, namespace: str, execution: str, pod: str, attempt: int) -> None:
        obj = self.cluster.get_execution(namespace, execution)
        if obj is None or not self.owns(obj):
            return
        t = Target(obj, ExecutionStatus.model_validate(obj.get("status") or {}))
        self.applier.follow(t, outcomes.disrupted(t.status, pod, attempt))

    def record_pod_health(self, namespace: str, execution: str, health: PodHealth) -> bool:
        """Say on the execution why its pod cannot start (or that it did); whether the
        execution is left with a pod that cannot start."""
        with self._locked(namespace, execution):
            obj = self.cluster.get_execution(namespace, execution)
            if obj is None or not self.owns(obj):
                return False
            t = Target(obj, ExecutionStatus.model_validate(obj.get("status") or {}))
            actions, blocked = podhealth.decide(t.status, health, dt.datetime.now(dt.UTC))
            self.applier.follow(t, actions)
            return blocked

    def owned(self, namespace: str, name: str) -> bool:
        """Whether the execution exists, is not being deleted, and is this operator's."""
        obj = self.cluster.get_execution(namespace, name)
        return obj is not None and not obj["metadata"].get("deletionTimestamp") and self.owns(obj)

    def owns(self, obj: dict[str, Any]) -> bool:
        """Whether this operator may touch the execution: it is in a namespace it
        watches, its labels match the selector, and it is not another repository's. A
        foreign one gets one Warning event (per operator process), nothing else: no
        status write, no Job."""
        meta = obj["metadata"]
        if self.namespaces and meta["namespace"] not in self.namespaces:
            return False
        if not matches(self.selector, meta.get("labels")):
            return False
        status = ExecutionStatus.model_validate(obj.get("status") or {})
        row = None
        if foreign.needs_check(status):
            assert status.execution_id is not None
            try:
                row = self.repo.get_execution(status.execution_id)
            except NoSuchExecution:
                row = None  # lost, not foreign: the reconcile says so
        job = str((obj.get("spec") or {}).get("job", ""))
        why = foreign.foreign(status, self.repo.repository_id, job=job, uid=meta["uid"], row=row)
        if why is None:
            return True
        key = (meta["namespace"], meta["name"], meta["uid"])
        if key not in self._warned:
            self._warned.add(key)
            t = Target(obj, status)
            self.applier.apply(t, foreign.warning(why))
            log.info("%s/%s: not ours: %s", key[0], key[1], why)
        return False

    def repository_state(self, execution_id: int | None) -> RepositoryState:
        """One execution's state (an event's reconcile; the tick reads all at once)."""
        if execution_id is None:
            return RepositoryState()
        execution = self.repo.get_execution(execution_id)
        return RepositoryState.of(
            ExecutionState(
                execution=execution,
                steps=tuple(self.repo.step_executions(execution_id)),
                previous=self.repo.previous_steps(execution),
                partitions=self.repo.partition_counts(execution.instance_id),
            )
        )

    # ------------------------------------------------------------ the loop

    def reconcile(self, namespace: str, name: str, *, max_rounds: int = 6) -> str | None:
        """Reconcile until nothing changes (bounded); return the phase ("" while it has
        none yet), or None when the BatchExecution is gone or being deleted."""
        start = time.monotonic()
        try:
            with self._locked(namespace, name):
                phase: str | None = None
                for rounds in range(max_rounds):
                    obj = self.cluster.get_execution(namespace, name)
                    if obj is None or obj["metadata"].get("deletionTimestamp"):
                        self.forget(namespace, name)
                        phase = None
                        break
                    if not self.owns(obj):
                        phase = None  # not ours: not ticked either
                        break
                    changed, phase = self._round(obj, first=not rounds)
                    phase = phase or ""
                    if not changed:
                        break
            self.job_statuses.flush()
            return phase
        except Exception as e:
            RECONCILE_ERRORS.labels(type(e).__name__).inc()
            raise
        finally:
            RECONCILE_DURATION.observe(time.monotonic() - start)

    def _round(self, obj: dict[str, Any], *, first: bool = True) -> tuple[bool, str | None]:
        """One read-decide-apply; (whether the state changed — the repository, or the
        status in a way a decision reads — and the phase as read). The first round may
        use the state the tick read for it."""
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        execution = BatchExecution.model_validate(
            {**obj, "metadata": {"name": name, "namespace": namespace}}
        )
        t = Target(obj, execution.status or ExecutionStatus())
        phase = t.status.phase.value if t.status.phase else None
        self.job_statuses.note(obj, phase)
        job_obj = job = None
        if t.status.execution_id is None:
            job_obj = self.cluster.get_batch_job(namespace, execution.spec.job)
            if job_obj is not None:
                job = self._parse_job(t, job_obj)
                if job is None:
                    self._retain(obj, None)
                    return False, phase
        try:
            repo_state = self._state_for((namespace, name), t.status.execution_id, first)
        except NoSuchExecution as e:
            self.applier.follow(t, outcomes.lost(t.status, str(e), dt.datetime.now(dt.UTC)))
            return False, phase
        current = repo_state.execution
        self._retain(obj, job_of(current) if current is not None else job)
        jobs = self.cluster.list_jobs(namespace, name) if current and current.status.running else []
        actions = reconcile(
            job,
            execution,
            repo_state,
            jobs,
            config=self.config,
            now=dt.datetime.now(dt.UTC),
            namespace=namespace,
            uid=meta["uid"],
            job_generation=(job_obj or {}).get("metadata", {}).get("generation"),
        )
        if current is not None:
            observe_steps(current.job_name, repo_state.steps)
        changed = False
        for action in actions:
            if isinstance(action, PatchStatus):
                if not changed:  # else stale: the next round computes it afresh
                    changed = self._write_progress(t, action)
                continue
            applied = self.applier.apply(t, action)
            changed |= applied and isinstance(action, CHANGES_STATE)
        return changed, phase

    def _retain(self, obj: dict[str, Any], job: BatchJob | None) -> None:
        """Tell retention about the execution as read, with its job's ttlStrategy (as
        launched; the BatchJob itself for one never launched)."""
        if self.retention is not None:
            self.retention.note(obj, job.spec.ttl_strategy if job is not None else None)

    def _state_for(self, key: Key, execution_id: int | None, first: bool) -> RepositoryState:
        if first and execution_id is not None:
            found = self.prefetch.take(key, execution_id)
            if found is not None:
                return found
        return self.repository_state(execution_id)

    def _write_progress(self, t: Target, action: PatchStatus) -> bool:
        """The mirrored status; progress-only changes (counts, percentages) at most
        every ``progress_seconds`` per execution, so API writes follow the phases, not
        the number of partitions or chunks; anything else at once. True when a field a
        decision reads was written: the loop decides once more on the new status (what
        the watch event of our own write used to trigger)."""
        patch = status_patch(t.obj.get("status"), action.status)
        if not patch:
            return False
        now = time.monotonic()
        key = (t.namespace, t.name)
        recent = now - self._last_patch.get(key, float("-inf")) < self.config.progress_seconds
        progress_only = set(patch) <= PROGRESS_FIELDS
        if progress_only and recent:
            return False
        self._last_patch[key] = now
        self.applier.write_status(t, patch)
        return not progress_only

    def _parse_job(self, t: Target, job_obj: dict[str, Any]) -> BatchJob | None:
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
            why = first_error(e) if isinstance(e, ValidationError) else str(e)
            message = f"BatchJob is invalid: {why}".splitlines()[0]
            now = dt.datetime.now(dt.UTC)
            self.applier.follow(t, outcomes.rejected(t.status, "InvalidDefinition", message, now))
            return None
