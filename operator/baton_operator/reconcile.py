"""The reconciler: a pure function from what is (the BatchJob, the BatchExecution, the
job repository's state, the Jobs in the cluster) to what to do (a list of actions).

No I/O here: the Kopf handlers read the state, call :func:`reconcile`, and hand the
actions to the applier (:mod:`baton_operator.kube`). The repository is the source of
truth for progress; ``.status`` mirrors it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from baton.core.parameters import JobParameters
from baton.core.status import BatchStatus, can_abandon
from baton.flow.engine import (
    CONTINUE,
    Finish,
    FlowState,
    PlanPartitions,
    RunCallback,
    RunCompensation,
    RunStep,
    Wait,
    compensates_on_abandon,
    next_actions,
)
from baton.repository import JobExecution, StepExecution
from baton.spec.model import BatchJob

from baton_operator.config import OperatorConfig
from baton_operator.k8s.resources import (
    BatchExecution,
    Condition,
    ExecutionStatus,
    JobStatus,
    Phase,
    StepStatus,
)
from baton_operator.manifests import step_job

# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RepositoryState:
    """What the job repository says about the execution's current attempt."""

    execution: JobExecution | None = None
    steps: tuple[StepExecution, ...] = ()
    # (step, partition) → status of its latest execution in earlier attempts
    previous: Mapping[tuple[str, int | None], BatchStatus] = field(default_factory=dict)
    # partitioned step → number of partitions planned for the instance
    partitions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedJob:
    """A batch/v1 Job of the execution, as the cluster reports it."""

    name: str
    step: str
    execution_id: int
    kind: str = "step"
    partitions: tuple[int, ...] | None = None
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    failed_condition: bool = False
    failed_reason: str = ""
    deleting: bool = False

    @property
    def finished(self) -> bool:
        return self.complete or self.failed_condition


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Launch:
    """Create a JobExecution (restart table applied by the repository)."""

    job_spec: dict[str, Any]
    raw_params: Mapping[str, Any] | None  # first launch: bound against the job spec
    params: JobParameters | None  # restart: the snapshotted, typed parameters
    observed_restart: int
    auto_restarts: int
    reason: str  # Launched | Restarted | AutoRestarted
    job_generation: int | None = None
    context: Mapping[str, Any] | None = None  # spec.context: seeds a new instance's context


@dataclass(frozen=True)
class StartExecution:
    """STARTING → STARTED; with ``concurrency`` on the job, only when admitted
    (maxRunning, cooldownSeconds), else the execution waits in phase Queued."""

    execution_id: int
    max_running: int | None = None
    cooldown_seconds: float = 0.0


@dataclass(frozen=True)
class CreateJob:
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class RequestStop:
    execution_id: int


@dataclass(frozen=True)
class DeletePods:
    """Grace period over: delete the pods of a Job (SIGTERM → stop at a chunk)."""

    job_name: str


@dataclass(frozen=True)
class FailUnits:
    """Units (a step, some partitions of it, a compensation or a callback) that the
    repository thinks are running, or that never started, whose Job is gone or
    finished: record them ended so the flow moves on (stale execution recovery)."""

    execution_id: int
    step: str
    kind: str
    partitions: tuple[int | None, ...]
    status: BatchStatus
    description: str


@dataclass(frozen=True)
class PlanStepPartitions:
    """Record the partitions of a partitioned step (count, items, a step's result)."""

    execution_id: int
    step: str


@dataclass(frozen=True)
class MarkCompensating:
    execution_id: int


@dataclass(frozen=True)
class FinishExecution:
    execution_id: int
    status: BatchStatus
    description: str


@dataclass(frozen=True)
class AbandonExecution:
    execution_id: int
    compensate: bool = False
    """compensateOnAbandon with compensations due: COMPENSATING first, then the saga."""


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PatchStatus:
    status: dict[str, Any]


Action = (
    Launch
    | StartExecution
    | CreateJob
    | RequestStop
    | DeletePods
    | FailUnits
    | PlanStepPartitions
    | MarkCompensating
    | FinishExecution
    | AbandonExecution
    | Event
    | PatchStatus
)

# Actions that change the repository or the cluster: after them, read and decide again.
CHANGES_STATE = (
    Launch,
    StartExecution,
    RequestStop,
    FailUnits,
    PlanStepPartitions,
    MarkCompensating,
    FinishExecution,
    AbandonExecution,
)

# ---------------------------------------------------------------- helpers

# A saga's ends: final, never restartable, nothing left to abandon.
COMPENSATION_ENDS = (BatchStatus.COMPENSATED, BatchStatus.COMPENSATION_FAILED)


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Conditions with ``type_`` set; its transition time kept when nothing changed."""
    out = [c for c in conditions if c.get("type") != type_]
    old = next((c for c in conditions if c.get("type") == type_), None)
    same = old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
        status,
        reason,
        message,
    )
    when = old.get("lastTransitionTime") if same and old else iso(now)
    out.append(
        Condition(
            type=type_,
            status=status,  # type: ignore[arg-type]
            reason=reason,
            message=message,
            last_transition_time=when,
        ).dump()
    )
    return sorted(out, key=lambda c: str(c["type"]))


def flow_state(execution: JobExecution, repo: RepositoryState) -> FlowState:
    """The flow engine's view of the execution, from the repository state."""
    return FlowState.of(execution, repo.steps, repo.previous, repo.partitions)


def _continuing(r: StepExecution) -> bool:
    """Ended its pod but not its work: a new pod continues it (exit 9: a time budget
    used up, or a pod deleted/evicted while the job was not STOPPING)."""
    return r.status is BatchStatus.STOPPED and r.exit_code == CONTINUE


def _fraction(r: StepExecution) -> float | None:
    """How far one unit is: 1 when COMPLETED, read/total when its total is known."""
    if r.status is BatchStatus.COMPLETED:
        return 1.0
    if r.total_count:
        return min((r.read_count + r.read_skip_count) / r.total_count, 0.99)
    return None


def step_statuses(
    job: BatchJob,
    steps: Sequence[StepExecution],
    partitions: Mapping[str, int] | None = None,
    previous: Mapping[tuple[str, int | None], BatchStatus] | None = None,
) -> tuple[list[StepStatus], float | None]:
    """Per-step status (partitions summed up) and the overall progress in [0, 1].

    A step's progress is the mean over its units (every planned partition, started or
    not) of how far each is; a unit whose total is unknown counts 0 until it completes,
    and one COMPLETED by an earlier attempt (not run again) counts done."""
    earlier = {k for k, v in (previous or {}).items() if v is BatchStatus.COMPLETED}
    by_step: dict[str, list[StepExecution]] = {}
    for s in steps:
        if getattr(s, "kind", "step") == "step":
            by_step.setdefault(s.step_name, []).append(s)
    out: list[StepStatus] = []
    fractions: list[float] = []
    members = [m for entry in job.spec.steps for m in getattr(entry, "members", [entry])]
    for spec in members:
        rows = by_step.get(spec.name, [])
        if not rows:
            fractions.append(1.0 if (spec.name, None) in earlier else 0.0)
            continue
        partitioned = any(r.partition is not None for r in rows)
        statuses = {BatchStatus.STARTED if _continuing(r) else r.status for r in rows}
        if any(s.running for s in statuses):
            status = BatchStatus.STARTED
        elif statuses == {BatchStatus.COMPLETED}:
            status = BatchStatus.COMPLETED
        else:
            status = next(
                s
                for s in (
                    BatchStatus.FAILED,
                    BatchStatus.STOPPED,
                    BatchStatus.ABANDONED,
                    BatchStatus.UNKNOWN,
                    BatchStatus.COMPLETED,
                )
                if s in statuses
            )
        total = sum(r.total_count or 0 for r in rows) if all(r.total_count for r in rows) else None
        units = max(len(rows), (partitions or {}).get(spec.name, 0)) if partitioned else 1
        ran = {r.partition for r in rows}
        done_before = sum(
            1 for (name, p) in earlier if name == spec.name and p is not None and p not in ran
        )
        done = sum(1 for r in rows if r.status is BatchStatus.COMPLETED) + done_before
        if status is BatchStatus.COMPLETED:
            fractions.append(1.0)
        else:
            known = [f for f in map(_fraction, rows) if f is not None]
            fractions.append(min((sum(known) + done_before) / units, 0.99))
        starts = [r.start_time for r in rows if r.start_time]
        ends = [r.end_time for r in rows if r.end_time]
        failed = [
            r
            for r in rows
            if r.status in (BatchStatus.FAILED, BatchStatus.STOPPED) and not _continuing(r)
        ]
        out.append(
            StepStatus(
                name=spec.name,
                status=status.value,
                partitions_total=units if partitioned else None,
                partitions_done=done if partitioned else None,
                read_count=sum(r.read_count for r in rows),
                write_count=sum(r.write_count for r in rows),
                filter_count=sum(r.filter_count for r in rows),
                skip_count=sum(r.skip_count for r in rows),
                commit_count=sum(r.commit_count for r in rows),
                rollback_count=sum(r.rollback_count for r in rows),
                total_count=total,
                start_time=iso(min(starts)) if starts else None,
                end_time=iso(max(ends)) if ends and not status.running else None,
                exit_description=(
                    failed[0].exit_description.split("\n", 1)[0][:500] if failed else None
                ),
            )
        )
    progress = sum(fractions) / len(fractions) if fractions else None
    return out, progress


@dataclass(frozen=True)
class Member:
    """One BatchExecution of a BatchJob, as the BatchJob's status counts it."""

    phase: str  # "" while it has none yet (Pending)
    created: str  # metadata.creationTimestamp (RFC 3339 sorts as text)


def job_status(members: Mapping[str, Member]) -> dict[str, Any]:
    """A BatchJob's ``.status`` from its BatchExecutions (name → phase, creation)."""
    phases: dict[str, int] = {}
    for m in members.values():
        key = m.phase or Phase.PENDING.value
        phases[key] = phases.get(key, 0) + 1
    last = max(members.items(), key=lambda kv: (kv[1].created, kv[0]), default=None)
    return JobStatus(
        executions=len(members),
        phases=dict(sorted(phases.items())),
        last_execution=last[0] if last else None,
        last_phase=(last[1].phase or Phase.PENDING.value) if last else None,
    ).dump()


# ---------------------------------------------------------------- the reconciler


def reconcile(
    job: BatchJob | None,
    execution: BatchExecution,
    repo: RepositoryState,
    jobs: Sequence[ObservedJob],
    *,
    config: OperatorConfig,
    now: dt.datetime,
    namespace: str,
    uid: str,
    job_generation: int | None = None,
) -> list[Action]:
    """Decide what to do next for one BatchExecution."""
    spec = execution.spec
    status = dict(execution.status or {})
    conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    actions: list[Action] = []
    current = repo.execution
    phase = status.get("phase")
    observed_restart = int(status.get("observedRestart") or 0)
    auto_restarts = int(status.get("autoRestarts") or 0)

    def patch(**changes: Any) -> None:
        new = {**status, **{k: v for k, v in changes.items()}}
        new["conditions"] = conditions
        new = {k: v for k, v in new.items() if v is not None}
        if new != execution.status:
            actions.append(PatchStatus(ExecutionStatus.model_validate(new).dump()))

    # ---- not launched yet (or rejected: a restart bump retries the launch)
    if current is None:
        retry = phase == Phase.REJECTED and spec.restart > observed_restart
        if phase == Phase.REJECTED and not retry:
            return actions
        if job is None:
            conditions = set_condition(
                conditions,
                "Launched",
                "False",
                "BatchJobNotFound",
                f"no BatchJob '{spec.job}' in namespace {namespace}; waiting for it",
                now,
            )
            patch(phase=Phase.PENDING.value)
            return actions
        actions.append(
            Launch(
                job_spec=job.dump(),
                raw_params=dict(spec.parameters),
                params=None,
                observed_restart=spec.restart,
                auto_restarts=auto_restarts,
                reason="Launched",
                job_generation=job_generation,
                context=spec.context,
            )
        )
        return actions

    cur_status = current.status
    snapshot = BatchJob.model_validate(current.job_spec)
    state = flow_state(current, repo)

    # ---- control fields
    if spec.stop and cur_status in (BatchStatus.STARTING, BatchStatus.STARTED):
        actions.append(RequestStop(current.id))
        actions.append(Event("Normal", "Stopping", "stop requested: pods stop at the next chunk"))
        status["stopRequestedAt"] = iso(now)
        patch()
        return actions

    settled = cur_status in (BatchStatus.ABANDONED, *COMPENSATION_ENDS) or state.abandoning
    if spec.abandon and not settled:
        if can_abandon(cur_status):
            saga = compensates_on_abandon(snapshot.spec, state)
            actions.append(AbandonExecution(current.id, compensate=saga))
            text = "abandoned; compensating first" if saga else "abandoned; it will never restart"
            actions.append(Event("Normal", "Abandoned", text))
            return actions
        conditions = set_condition(
            conditions,
            "Abandoned",
            "False",
            "WrongState",
            f"cannot abandon: the execution is {cur_status.value}"
            + ("; stop it first" if cur_status.running else ""),
            now,
        )

    if spec.restart > observed_restart:
        if cur_status in (BatchStatus.FAILED, BatchStatus.STOPPED) and not spec.abandon:
            actions.append(
                Launch(
                    job_spec=current.job_spec,
                    raw_params=None,
                    params=current.parameters,
                    observed_restart=spec.restart,
                    auto_restarts=auto_restarts,
                    reason="Restarted",
                    job_generation=status.get("jobGeneration"),
                )
            )
            return actions
        conditions = set_condition(
            conditions,
            "Restarted",
            "False",
            "WrongState",
            f"restart {spec.restart} ignored: the execution is {cur_status.value}; "
            "only Failed or Stopped executions restart",
            now,
        )
        observed_restart = spec.restart
        status["observedRestart"] = observed_restart

    # ---- automatic restart after a disruption
    auto = spec.auto_restart
    if (
        cur_status is BatchStatus.STOPPED
        and not spec.stop
        and not spec.abandon
        and auto is not None
        and auto.on_disruption
        and status.get("disruptedAttempt") == current.attempt
        and auto_restarts < auto.max_restarts
    ):
        actions.append(
            Launch(
                job_spec=current.job_spec,
                raw_params=None,
                params=current.parameters,
                observed_restart=observed_restart,
                auto_restarts=auto_restarts + 1,
                reason="AutoRestarted",
                job_generation=status.get("jobGeneration"),
            )
        )
        return actions

    # ---- drive the flow
    if cur_status is BatchStatus.STARTING:
        limits = getattr(snapshot.spec, "concurrency", None)
        if limits is None:
            actions.append(StartExecution(current.id))
        else:
            actions.append(
                StartExecution(current.id, limits.max_running, float(limits.cooldown_seconds))
            )
        return actions

    if cur_status in (BatchStatus.STARTED, BatchStatus.STOPPING, BatchStatus.COMPENSATING):
        stopping = cur_status is BatchStatus.STOPPING
        mine = [j for j in jobs if j.execution_id == current.id]

        def live(step: str, kind: str) -> list[ObservedJob]:
            return [
                j
                for j in mine
                if j.step == step and j.kind == kind and not j.finished and not j.deleting
            ]

        def job_for(
            step: str,
            kind: str,
            partitions: tuple[int, ...] | None = None,
            partition: int | None = None,
            parallelism: int | None = None,
            env: dict[str, str] | None = None,
        ) -> dict[str, Any]:
            return step_job(
                execution=execution.name,
                namespace=namespace,
                uid=uid,
                execution_id=current.id,
                attempt=current.attempt,
                step=step,
                config=config,
                image=snapshot.spec.image,
                partitions=partitions,
                parallelism=parallelism,
                backoff_limit_per_index=spec.backoff_limit_per_index,
                working_dir=spec.working_dir,
                service_account=spec.service_account_name,
                stop_grace_seconds=spec.stop_grace_period_seconds,
                kind=kind,
                partition=partition,
                extra_env=env,
                queue=getattr(snapshot.spec, "queue", None),
            )

        def start(
            manifest: dict[str, Any], step: str, kind: str, units: tuple[int | None, ...]
        ) -> bool:
            """Create the Job; True when the flow must be re-read (a lost start)."""
            name = manifest["metadata"]["name"]
            existing = next((j for j in mine if j.name == name), None)
            if existing is None:
                actions.append(CreateJob(manifest))
                what = f"step '{step}'" if kind == "step" else f"{kind} of '{step}'"
                actions.append(Event("Normal", "StepStarted", f"{what}: Job {name} created"))
                return False
            if existing.finished:
                # The Job ran and ended, but these units never recorded a start (e.g.
                # the pod could not reach the database): record them failed, not loop.
                end = BatchStatus.STOPPED if stopping else BatchStatus.FAILED
                why = f"its Job {name} ended ({existing.failed_reason or 'finished'})"
                actions.append(
                    FailUnits(current.id, step, kind, units, end, f"{kind} '{step}': {why}")
                )
                return True
            return False

        for act in next_actions(snapshot.spec, state):
            if isinstance(act, Finish):
                if any(r.status.running for r in repo.steps):
                    continue  # never end an execution under a running unit
                actions.append(FinishExecution(current.id, act.status, act.description))
                kind = "Normal" if act.status is BatchStatus.COMPLETED else "Warning"
                actions.append(
                    Event(kind, Phase.of(act.status).value, act.description or act.status.value)
                )
                return actions
            if isinstance(act, PlanPartitions):
                actions.append(PlanStepPartitions(current.id, act.step))
                return actions
            if isinstance(act, Wait):
                running = [r for r in repo.steps if r.status.running and r.step_name in act.steps]
                lost: dict[tuple[str, str], list[StepExecution]] = {}
                for r in running:
                    lost.setdefault((r.step_name, getattr(r, "kind", "step")), []).append(r)
                for (step, kind), rows in lost.items():
                    alive = live(step, kind)
                    if not alive:
                        owned = [j for j in mine if j.step == step and j.kind == kind]
                        if not owned:
                            why = "its Job is gone"
                        elif owned[-1].deleting:
                            why = f"its Job {owned[-1].name} is gone (deleted)"
                        else:
                            ended = owned[-1].failed_reason or "finished"
                            why = (
                                f"its Job {owned[-1].name} ended ({ended}) without recording an end"
                            )
                        end = BatchStatus.STOPPED if stopping else BatchStatus.FAILED
                        units = tuple(r.partition for r in rows)
                        text = f"{kind} '{step}': {why}"
                        actions.append(FailUnits(current.id, step, kind, units, end, text))
                        actions.append(Event("Warning", "StepLost", text))
                        return actions
                    if stopping:
                        requested = parse_time(status.get("stopRequestedAt"))
                        if requested is None:
                            status["stopRequestedAt"] = iso(now)
                        elif (now - requested).total_seconds() > spec.stop_grace_period_seconds:
                            for j in alive:
                                if j.active:
                                    actions.append(DeletePods(j.name))
                                    actions.append(
                                        Event(
                                            "Warning",
                                            "StopGraceExpired",
                                            f"pods of {j.name} did not stop within "
                                            f"{spec.stop_grace_period_seconds}s; deleting them",
                                        )
                                    )
                continue
            if isinstance(act, RunStep):
                if live(act.step, "step"):
                    continue  # its Indexed Job runs (or retries) those partitions
                parts = act.partitions
                todo: tuple[int | None, ...] = (None,) if parts is None else tuple(parts)
                manifest = job_for(act.step, "step", partitions=parts, parallelism=act.parallelism)
                if start(manifest, act.step, "step", todo):
                    return actions
                continue
            if isinstance(act, RunCompensation):
                if cur_status is not BatchStatus.COMPENSATING:
                    actions.append(MarkCompensating(current.id))
                    return actions
                if live(act.step, "compensation"):
                    continue
                manifest = job_for(act.step, "compensation", partition=act.partition)
                if start(manifest, act.step, "compensation", (act.partition,)):
                    return actions
                continue
            if isinstance(act, RunCallback):
                if live(act.step, "callback"):
                    continue
                manifest = job_for(
                    act.step,
                    "callback",
                    env={"BATON_OUTCOME": act.outcome.value, "BATON_OUTCOME_ERROR": act.error},
                )
                if start(manifest, act.step, "callback", (None,)):
                    return actions
                continue

    # ---- mirror the repository into .status
    steps, progress = step_statuses(snapshot, repo.steps, repo.partitions, repo.previous)
    new_phase = Phase.of(cur_status)
    conditions = set_condition(
        conditions,
        "Launched",
        "True",
        "Launched",
        f"JobExecution {current.id} (attempt {current.attempt}) of instance {current.instance_id}",
        now,
    )
    if (
        phase != new_phase.value
        and phase is not None
        and new_phase in (Phase.RUNNING, Phase.STOPPED, Phase.ABANDONED)
    ):
        kind = "Warning" if new_phase is Phase.STOPPED else "Normal"
        actions.append(Event(kind, new_phase.value, f"phase {phase} → {new_phase.value}"))
    if new_phase is Phase.COMPLETED:
        progress = 1.0
    patch(
        phase=new_phase.value,
        jobExecutionId=current.id,
        instanceId=current.instance_id,
        attempt=current.attempt,
        progress=f"{progress * 100:.0f}%" if progress is not None else None,
        readCount=sum(s.read_count for s in steps),
        writeCount=sum(s.write_count for s in steps),
        skipCount=sum(s.skip_count for s in steps),
        steps=[s.dump() for s in steps],
        startTime=iso(current.start_time),
        endTime=iso(current.end_time),
        exitDescription=(current.exit_description.split("\n", 1)[0][:1000] or None),
    )
    return actions
