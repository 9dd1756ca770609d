"""The reconciler's decision for one BatchExecution, phase by phase: not launched yet
(launch, or wait for its BatchJob), the control fields (stop, abandon, restart), an
automatic restart after a disruption, admission, driving the flow, and the mirror of
the repository into ``.status``. Each step is a small pure function of the situation
that adds to the draft; the first that completes the decision ends it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from baton.core.status import BatchStatus, can_abandon
from baton.flow.engine import compensates_on_abandon
from baton.spec.model import BatchJob
from baton.spec.snapshot import job_of

from baton_operator.config import OperatorConfig
from baton_operator.k8s.cluster import ObservedJob
from baton_operator.k8s.resources import BatchExecution, Phase, iso
from baton_operator.reconcile.actions import (
    AbandonExecution,
    Action,
    Event,
    Launch,
    RequestStop,
    StartExecution,
)
from baton_operator.reconcile.deadlines import mirror_deadline, stop_at_deadline
from baton_operator.reconcile.jobs import drive
from baton_operator.reconcile.loglinks import log_links
from baton_operator.reconcile.progress import step_statuses
from baton_operator.reconcile.state import Draft, RepositoryState, Situation, flow_state

# A saga's ends: final, never restartable, nothing left to abandon.
COMPENSATION_ENDS = (BatchStatus.COMPENSATED, BatchStatus.COMPENSATION_FAILED)
DRIVEN = (BatchStatus.STARTED, BatchStatus.STOPPING, BatchStatus.COMPENSATING)


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
    draft = Draft.of(execution)
    current = repo.execution
    if current is None:  # not launched yet (or rejected: a restart bump retries)
        return _not_launched(job, execution, draft, now, namespace, job_generation)
    s = Situation(
        execution=execution,
        current=current,
        snapshot=job_of(current),
        state=flow_state(current, repo),
        repo=repo,
        jobs=jobs,
        config=config,
        now=now,
        namespace=namespace,
        uid=uid,
    )
    for step in DECISIONS:
        if step(s, draft):
            return draft.actions
    _mirror(s, draft)
    return draft.emit()


def _not_launched(
    job: BatchJob | None,
    execution: BatchExecution,
    d: Draft,
    now: dt.datetime,
    namespace: str,
    job_generation: int | None,
) -> list[Action]:
    spec = execution.spec
    phase = d.status.phase
    retry = phase is Phase.REJECTED and spec.restart > (d.status.observed_restart or 0)
    if phase is Phase.REJECTED and not retry:
        return d.actions
    if job is None:
        text = f"no BatchJob '{spec.job}' in namespace {namespace}; waiting for it"
        d.condition("Launched", "False", "BatchJobNotFound", text, now)
        d.status.phase = Phase.PENDING
        return d.emit()
    launch = Launch(
        job=job,
        job_spec=job.dump(),
        raw_params=spec.parameters,
        params=None,
        observed_restart=spec.restart,
        auto_restarts=d.status.auto_restarts or 0,
        reason="Launched",
        job_generation=job_generation,
        context=spec.context,
    )
    d.actions.append(launch)
    return d.actions


def _relaunch(s: Situation, d: Draft, observed: int, auto: int, reason: str) -> Launch:
    """A new attempt of the current execution's instance, from its snapshot."""
    return Launch(
        job=s.snapshot,
        job_spec=s.current.job_spec,
        raw_params=None,
        params=s.current.parameters,
        observed_restart=observed,
        auto_restarts=auto,
        reason=reason,
        job_generation=d.status.job_generation,
    )


def _stop(s: Situation, d: Draft) -> bool:
    if not (
        s.execution.spec.stop and s.current.status in (BatchStatus.STARTING, BatchStatus.STARTED)
    ):
        return False
    d.actions.append(RequestStop(s.current.id))
    d.actions.append(Event("Normal", "Stopping", "stop requested: pods stop at the next chunk"))
    d.status.stop_requested_at = iso(s.now)
    d.emit()
    return True


def _abandon(s: Situation, d: Draft) -> bool:
    status = s.current.status
    settled = status in (BatchStatus.ABANDONED, *COMPENSATION_ENDS) or s.state.abandoning
    if not s.execution.spec.abandon or settled:
        return False
    if can_abandon(status):
        saga = compensates_on_abandon(s.snapshot.spec, s.state)
        d.actions.append(AbandonExecution(s.current.id, compensate=saga))
        text = "abandoned; compensating first" if saga else "abandoned; it will never restart"
        d.actions.append(Event("Normal", "Abandoned", text))
        return True
    text = f"cannot abandon: the execution is {status.value}" + (
        "; stop it first" if status.running else ""
    )
    d.condition("Abandoned", "False", "WrongState", text, s.now)
    return False


def _restart(s: Situation, d: Draft) -> bool:
    spec, status = s.execution.spec, s.current.status
    if spec.restart <= (d.status.observed_restart or 0):
        return False
    if status in (BatchStatus.FAILED, BatchStatus.STOPPED) and not spec.abandon:
        auto = d.status.auto_restarts or 0
        d.actions.append(_relaunch(s, d, spec.restart, auto, "Restarted"))
        return True
    text = (
        f"restart {spec.restart} ignored: the execution is {status.value}; "
        "only Failed or Stopped executions restart"
    )
    d.condition("Restarted", "False", "WrongState", text, s.now)
    d.status.observed_restart = spec.restart
    return False


def _auto_restart(s: Situation, d: Draft) -> bool:
    """A stop caused by a pod disruption restarts by itself (spec.autoRestart)."""
    spec, auto = s.execution.spec, s.execution.spec.auto_restart
    done = d.status.auto_restarts or 0
    if not (
        s.current.status is BatchStatus.STOPPED
        and not spec.stop
        and not spec.abandon
        and auto is not None
        and auto.on_disruption
        and d.status.disrupted_attempt == s.current.attempt
        and done < auto.max_restarts
    ):
        return False
    observed = d.status.observed_restart or 0
    d.actions.append(_relaunch(s, d, observed, done + 1, "AutoRestarted"))
    return True


def _admit(s: Situation, d: Draft) -> bool:
    """STARTING: start it, through admission when the job limits its concurrency."""
    if s.current.status is not BatchStatus.STARTING:
        return False
    limits = s.snapshot.spec.concurrency
    if limits is None:
        d.actions.append(StartExecution(s.current.id))
    else:
        cooldown = float(limits.cooldown_seconds)
        d.actions.append(StartExecution(s.current.id, limits.max_running, cooldown))
    return True


def _drive(s: Situation, d: Draft) -> bool:
    return s.current.status in DRIVEN and drive(s, d)


DECISIONS: tuple[Callable[[Situation, Draft], bool], ...] = (
    _stop,
    _abandon,
    _restart,
    _auto_restart,
    _admit,
    stop_at_deadline,
    _drive,
)


def _mirror(s: Situation, d: Draft) -> None:
    """The repository's view of the current attempt, into the draft status."""
    current, found = s.current, d.status.phase
    steps, progress = step_statuses(s.snapshot, s.repo.steps, s.repo.partitions, s.repo.previous)
    phase = Phase.of(current.status)
    text = (
        f"JobExecution {current.id} (attempt {current.attempt}) of instance {current.instance_id}"
    )
    d.condition("Launched", "True", "Launched", text, s.now)
    mirror_deadline(s, d)
    if (
        found is not phase
        and found is not None
        and phase in (Phase.RUNNING, Phase.STOPPED, Phase.ABANDONED)
    ):
        kind = "Warning" if phase is Phase.STOPPED else "Normal"
        d.actions.append(Event(kind, phase.value, f"phase {found.value} → {phase.value}"))
    if phase is Phase.COMPLETED:
        progress = 1.0
    st = d.status
    st.phase = phase
    st.execution_id, st.instance_id, st.attempt = current.id, current.instance_id, current.attempt
    st.progress = f"{progress * 100:.0f}%" if progress is not None else None
    st.read_count = sum(x.read_count for x in steps)
    st.write_count = sum(x.write_count for x in steps)
    st.skip_count = sum(x.skip_count for x in steps)
    st.steps = steps
    st.logs = log_links(s.config.logs_url_template, s.snapshot, _link_values(s))
    st.start_time, st.end_time = iso(current.start_time), iso(current.end_time)
    st.exit_description = current.exit_description.split("\n", 1)[0][:1000] or None


def _link_values(s: Situation) -> dict[str, object]:
    """The placeholders of ``status.logs`` links but ``{step}``."""
    return {
        "namespace": s.namespace,
        "execution": s.execution.metadata.name,
        "executionId": s.current.id,
        "attempt": s.current.attempt,
        "job": s.current.job_name,
    }
