"""The effects of the reconciler's actions: repository transitions, launches, Jobs,
pods, events and ``.status`` writes. Thin: where an effect's result needs a decision
(a launch refused, an execution not admitted), the pure functions of
:mod:`baton_operator.reconcile.outcomes` make it and their actions are applied here."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from baton.core.entities import JobExecution, StepExecution
from baton.core.errors import InvalidDefinition, InvalidParameters, LaunchRejected
from baton.core.status import BatchStatus, UnitKind
from baton.flow.partitions import plan_partitions
from baton.flow.state import ABANDONED
from baton.registry.checks import check_builtin_components
from baton.repository import JobRepository
from baton.spec.binding import check_bindings
from baton.spec.snapshot import job_of

from baton_operator.jobstatus import JobStatuses
from baton_operator.k8s.cluster import Cluster
from baton_operator.k8s.resources import ExecutionStatus
from baton_operator.patching import status_patch
from baton_operator.reconcile import outcomes
from baton_operator.reconcile.actions import (
    AbandonExecution,
    Action,
    CreateJob,
    DeletePods,
    Event,
    FailUnits,
    FinishExecution,
    Launch,
    MarkCompensating,
    MergeStatus,
    PatchStatus,
    PlanStepPartitions,
    RequestStop,
    StartExecution,
)
from baton_operator.valuefrom import launch_parameters

log = logging.getLogger("baton.operator")


@dataclass(frozen=True)
class Target:
    """The BatchExecution an action is for: the API object as read (merge patches are
    computed against it; events name it) and its status, typed."""

    obj: dict[str, Any]
    status: ExecutionStatus

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


def open_step(
    repo: JobRepository,
    execution: JobExecution,
    step: str,
    partition: int | None = None,
    kind: UnitKind = UnitKind.STEP,
) -> StepExecution:
    """Open a unit's row for a unit whose pod never did (to record how it ended)."""
    row: StepExecution = repo.open_step(execution, step, partition, worker=None, kind=kind)
    return row


def owner_tag(uid: str, restart: int, auto: int) -> str:
    """Recorded as the JobExecution's owner: lets a relaunch after an operator crash
    find the execution it already made instead of being rejected by it."""
    return f"k8s/{uid}/r{restart}/a{auto}"


class Applier:
    """Applies actions to the repository and the cluster."""

    def __init__(self, repo: JobRepository, cluster: Cluster, statuses: JobStatuses) -> None:
        self.repo = repo
        self.cluster = cluster
        self.statuses = statuses
        self._effects: dict[type, Callable[[Target, Any], bool]] = {
            Launch: self._launch,
            StartExecution: self._start,
            CreateJob: self._create_job,
            RequestStop: self._request_stop,
            DeletePods: self._delete_pods,
            FailUnits: self._fail_units,
            PlanStepPartitions: self._plan_partitions,
            MarkCompensating: self._mark_compensating,
            FinishExecution: self._finish,
            AbandonExecution: self._abandon,
            Event: self._event,
            PatchStatus: self._patch_status,
            MergeStatus: self._merge_status,
        }

    def apply(self, t: Target, action: Action) -> bool:
        """Apply one action; True when it changed something."""
        return self._effects[type(action)](t, action)

    def follow(self, t: Target, actions: Iterable[Action]) -> None:
        for action in actions:
            self.apply(t, action)

    def write_status(self, t: Target, patch: dict[str, Any]) -> None:
        """Send a merge patch of ``.status``; a phase it sets is counted for the
        BatchJob's status and the metrics."""
        self.cluster.patch_status(t.namespace, t.name, patch)
        if "phase" in patch:
            self.statuses.note(t.obj, patch["phase"])

    # ------------------------------------------------------------ status and events

    def _patch_status(self, t: Target, action: PatchStatus) -> bool:
        patch = status_patch(t.obj.get("status"), action.status)
        if patch:
            self.write_status(t, patch)
        return False

    def _merge_status(self, t: Target, action: MergeStatus) -> bool:
        self.write_status(t, action.patch)
        return False

    def _event(self, t: Target, action: Event) -> bool:
        self.cluster.event(t.obj, action.type, action.reason, action.message)
        return False

    # ------------------------------------------------------------ launch and admission

    def _find_launched(self, namespace: str, job_name: str, tag: str) -> JobExecution | None:
        """The execution this launch recorded before the operator went away (its status
        write lost): found by its owner tag, however many launched since."""
        return self.repo.owned_execution(job_name, tag, namespace=namespace)

    def _claim(self, t: Target) -> bool:
        """Bind the execution to this repository before launching into it: a status
        write conditional on the resourceVersion read, so of two operators whose
        selectors overlap only one launches (the other then sees a foreign execution).
        A conflict from our own earlier write in this round is retried once, fresh."""
        mine = self.repo.repository_id
        obj: dict[str, Any] | None = t.obj
        for _ in range(2):
            if obj is None:
                return False  # deleted meanwhile
            claimed = (obj.get("status") or {}).get("repositoryId")
            if claimed is not None:
                return bool(claimed == mine)
            version = obj["metadata"].get("resourceVersion")
            if self.cluster.claim(t.namespace, t.name, version, mine):
                t.status.repository_id = mine
                return True
            obj = self.cluster.get_execution(t.namespace, t.name)
        log.info(
            "%s/%s: claimed by another writer first; left to the next round", t.namespace, t.name
        )
        return False

    def _launch(self, t: Target, action: Launch) -> bool:
        now = dt.datetime.now(dt.UTC)
        tag = owner_tag(
            str(t.obj["metadata"]["uid"]), action.observed_restart, action.auto_restarts
        )
        job = action.job
        if t.status.repository_id is None and not self._claim(t):
            return False
        try:
            execution = self._find_launched(t.namespace, job.name, tag)
            if execution is None:
                check_bindings(job.spec)  # refused like a bad parameter: nothing recorded
                check_builtin_components(job)
                params = action.params or launch_parameters(
                    self.cluster, t.namespace, action.raw_params, job
                )
                execution = self.repo.launch(
                    job.name,
                    action.job_spec,
                    params,
                    prevent_restart=job.spec.prevent_restart,
                    source_dir=None,
                    owner=tag,
                    context=action.context,
                    namespace=t.namespace,
                )
        except (LaunchRejected, InvalidParameters, InvalidDefinition) as e:
            rule = e.rule if isinstance(e, LaunchRejected) else type(e).__name__
            if action.reason == "Launched":
                self.follow(
                    t, outcomes.rejected(t.status, rule, str(e), now, action.observed_restart)
                )
            else:
                self.follow(
                    t,
                    outcomes.restart_rejected(t.status, rule, str(e), action.observed_restart, now),
                )
            return False
        self.follow(t, outcomes.launched(t.status, execution, action, now, self.repo.repository_id))
        log.info(
            "%s/%s: %s JobExecution %s", t.namespace, t.name, action.reason.lower(), execution.id
        )
        return True

    def _start(self, t: Target, action: StartExecution) -> bool:
        if action.max_running is None:
            self.repo.transition(
                action.execution_id,
                BatchStatus.STARTED,
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
            self.follow(t, outcomes.queued(t.status, action.max_running, action.cooldown_seconds))
        return bool(admitted)

    # ------------------------------------------------------------ the flow

    def _create_job(self, t: Target, action: CreateJob) -> bool:
        created = self.cluster.create_job(action.manifest)
        if created:
            log.info("%s/%s: created Job %s", t.namespace, t.name, action.name)
        return created

    def _request_stop(self, t: Target, action: RequestStop) -> bool:
        self.repo.transition(
            action.execution_id,
            BatchStatus.STOPPING,
            action="stop",
            exit_code=action.exit_code,
            description=action.description,
        )
        return True

    def _delete_pods(self, t: Target, action: DeletePods) -> bool:
        self.cluster.delete_pods(t.namespace, action.job_name)
        return False

    def _fail_units(self, t: Target, action: FailUnits) -> bool:
        execution = self.repo.get_execution(action.execution_id)
        rows = {
            st.partition: st
            for st in self.repo.step_executions(execution.id)
            if st.step_name == action.step and st.kind == action.kind
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
        return True

    def _plan_partitions(self, t: Target, action: PlanStepPartitions) -> bool:
        execution = self.repo.get_execution(action.execution_id)
        n = plan_partitions(self.repo, execution, job_of(execution), action.step)
        log.info("%s/%s: step %s has %d partitions", t.namespace, t.name, action.step, n)
        return True

    def _mark_compensating(self, t: Target, action: MarkCompensating) -> bool:
        self.repo.transition(
            action.execution_id,
            BatchStatus.COMPENSATING,
            action="compensate",
        )
        return True

    def _finish(self, t: Target, action: FinishExecution) -> bool:
        self.repo.finish(action.execution_id, action.status, action.description, action.exit_code)
        return True

    def _abandon(self, t: Target, action: AbandonExecution) -> bool:
        self.repo.transition(
            action.execution_id,
            BatchStatus.COMPENSATING if action.compensate else BatchStatus.ABANDONED,
            action="abandon",
            exit_code=ABANDONED,
            description="abandoned; compensating" if action.compensate else None,
            end=not action.compensate,
        )
        return True
