"""Driving the flow in the cluster: the flow engine's next actions become step Jobs to
create, units to record lost (their Job gone or ended without them), pods to delete
once a stop's grace period is over, partitions to plan, or the execution's end."""

from __future__ import annotations

from typing import Any

from baton.core.entities import StepExecution
from baton.core.status import BatchStatus, UnitKind
from baton.flow.actions import (
    Finish,
    PlanPartitions,
    RunCallback,
    RunCompensation,
    RunStep,
    Wait,
)
from baton.flow.deadlines import finish_of
from baton.flow.engine import next_actions

from baton_operator.k8s.cluster import ObservedJob
from baton_operator.k8s.resources import Phase, iso, parse_time
from baton_operator.manifests import step_job
from baton_operator.podtemplate import step_image, step_layers
from baton_operator.reconcile.actions import (
    CreateJob,
    DeletePods,
    Event,
    FailUnits,
    FinishExecution,
    MarkCompensating,
    PlanStepPartitions,
)
from baton_operator.reconcile.deadlines import job_active_deadline
from baton_operator.reconcile.state import Draft, Situation
from baton_operator.valuefrom import secret_env


def drive(s: Situation, d: Draft) -> bool:
    """Act on the flow's next actions; True when the decision is complete (return now,
    the status is not mirrored: the next round reads the new state)."""
    for act in next_actions(s.snapshot.spec, s.state):
        if isinstance(act, Finish):
            if any(r.status.running for r in s.repo.steps):
                continue  # never end an execution under a running unit
            act = finish_of(act, s.current, s.repo.steps)
            d.actions.append(
                FinishExecution(s.current.id, act.status, act.description, act.exit_code)
            )
            kind = "Normal" if act.status is BatchStatus.COMPLETED else "Warning"
            text = act.description or act.status.value
            d.actions.append(Event(kind, Phase.of(act.status).value, text))
            return True
        if isinstance(act, PlanPartitions):
            d.actions.append(PlanStepPartitions(s.current.id, act.step))
            return True
        if isinstance(act, Wait):
            if _wait(s, d, act):
                return True
        elif isinstance(act, RunStep):
            if _run_step(s, d, act):
                return True
        elif isinstance(act, RunCompensation):
            if _run_compensation(s, d, act):
                return True
        elif isinstance(act, RunCallback) and _run_callback(s, d, act):
            return True
    return False


def _job_for(
    s: Situation,
    step: str,
    kind: UnitKind,
    partitions: tuple[int, ...] | None = None,
    partition: int | None = None,
    parallelism: int | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec = s.execution.spec
    launch = spec.template.dump() if spec.template is not None else None
    return step_job(
        execution=s.execution.name,
        namespace=s.namespace,
        uid=s.uid,
        execution_id=s.current.id,
        attempt=s.current.attempt,
        step=step,
        config=s.config,
        image=step_image(s.snapshot.spec, step),
        partitions=partitions,
        parallelism=parallelism,
        backoff_limit_per_index=spec.backoff_limit_per_index,
        working_dir=spec.working_dir,
        service_account=spec.service_account_name,
        stop_grace_seconds=spec.stop_grace_period_seconds,
        kind=kind,
        partition=partition,
        extra_env=env,
        secret_env=secret_env(spec.parameters),
        queue=s.snapshot.spec.queue,
        templates=[*step_layers(s.snapshot.spec, step), ("BatchExecution template", launch)],
        active_deadline_seconds=job_active_deadline(s) if kind is UnitKind.STEP else None,
    )


def _start(
    s: Situation,
    d: Draft,
    manifest: dict[str, Any],
    step: str,
    kind: UnitKind,
    units: tuple[int | None, ...],
) -> bool:
    """Create the Job; True when the flow must be re-read (a lost start)."""
    name = manifest["metadata"]["name"]
    existing = next((j for j in s.mine if j.name == name), None)
    if existing is None:
        d.actions.append(CreateJob(manifest))
        what = f"step '{step}'" if kind is UnitKind.STEP else f"{kind} of '{step}'"
        d.actions.append(Event("Normal", "StepStarted", f"{what}: Job {name} created"))
        return False
    if existing.finished:
        # The Job ran and ended, but these units never recorded a start (e.g. the pod
        # could not reach the database): record them failed, not loop.
        end = BatchStatus.STOPPED if s.stopping else BatchStatus.FAILED
        why = f"its Job {name} ended ({existing.failed_reason or 'finished'})"
        text = f"{kind} '{step}': {why}"
        d.actions.append(FailUnits(s.current.id, step, kind, units, end, text))
        return True
    return False


def _run_step(s: Situation, d: Draft, act: RunStep) -> bool:
    if s.live(act.step, UnitKind.STEP):
        return False  # its Indexed Job runs (or retries) those partitions
    parts = act.partitions
    todo: tuple[int | None, ...] = (None,) if parts is None else tuple(parts)
    manifest = _job_for(s, act.step, UnitKind.STEP, partitions=parts, parallelism=act.parallelism)
    return _start(s, d, manifest, act.step, UnitKind.STEP, todo)


def _run_compensation(s: Situation, d: Draft, act: RunCompensation) -> bool:
    if s.current.status is not BatchStatus.COMPENSATING:
        d.actions.append(MarkCompensating(s.current.id))
        return True
    if s.live(act.step, UnitKind.COMPENSATION):
        return False
    manifest = _job_for(s, act.step, UnitKind.COMPENSATION, partition=act.partition)
    return _start(s, d, manifest, act.step, UnitKind.COMPENSATION, (act.partition,))


def _run_callback(s: Situation, d: Draft, act: RunCallback) -> bool:
    if s.live(act.step, UnitKind.CALLBACK):
        return False
    env = {"BATON_OUTCOME": act.outcome.value, "BATON_OUTCOME_ERROR": act.error}
    manifest = _job_for(s, act.step, UnitKind.CALLBACK, env=env)
    return _start(s, d, manifest, act.step, UnitKind.CALLBACK, (None,))


def _lost_why(s: Situation, step: str, kind: UnitKind) -> str:
    owned = [j for j in s.mine if j.step == step and j.kind == kind]
    if not owned:
        return "its Job is gone"
    if owned[-1].deleting:
        return f"its Job {owned[-1].name} is gone (deleted)"
    ended = owned[-1].failed_reason or "finished"
    return f"its Job {owned[-1].name} ended ({ended}) without recording an end"


def _wait(s: Situation, d: Draft, act: Wait) -> bool:
    """Units run: record those whose Job is gone; past a stop's grace period, delete
    the pods that did not stop. True when units were recorded lost."""
    running = [r for r in s.repo.steps if r.status.running and r.step_name in act.steps]
    lost: dict[tuple[str, UnitKind], list[StepExecution]] = {}
    for r in running:
        lost.setdefault((r.step_name, UnitKind(r.kind)), []).append(r)
    for (step, kind), rows in lost.items():
        alive = s.live(step, kind)
        if not alive:
            end = BatchStatus.STOPPED if s.stopping else BatchStatus.FAILED
            units = tuple(r.partition for r in rows)
            text = f"{kind} '{step}': {_lost_why(s, step, kind)}"
            d.actions.append(FailUnits(s.current.id, step, kind, units, end, text))
            d.actions.append(Event("Warning", "StepLost", text))
            return True
        if s.stopping:
            _stop_grace(s, d, alive)
    return False


def _stop_grace(s: Situation, d: Draft, alive: list[ObservedJob]) -> None:
    grace = s.execution.spec.stop_grace_period_seconds
    requested = parse_time(d.status.stop_requested_at)
    if requested is None:
        d.status.stop_requested_at = iso(s.now)
    elif (s.now - requested).total_seconds() > grace:
        for j in alive:
            if j.active:
                d.actions.append(DeletePods(j.name))
                text = f"pods of {j.name} did not stop within {grace}s; deleting them"
                d.actions.append(Event("Warning", "StopGraceExpired", text))
