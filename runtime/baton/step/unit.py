"""Opening a unit: admit it (one transaction reads the execution and writes the step
row), pick the step body it runs, and build the context it sees."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from baton.core.entities import JobExecution, StepExecution
from baton.core.errors import InvalidDefinition
from baton.core.parameters import unseal
from baton.core.status import BatchStatus, UnitKind
from baton.flow.partitions import plan_partitions
from baton.repository import JobRepository
from baton.repository.retry import Retrier
from baton.spec.model import BatchJob, StepBody
from baton.spec.snapshot import job_of
from baton.step import events
from baton.step.context import StepContext


def worker_name() -> str:
    """The pod name in a cluster (its hostname), else host:pid."""
    if os.environ.get("BATON_WORKER"):
        return os.environ["BATON_WORKER"]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return socket.gethostname()
    return f"{socket.gethostname()}:{os.getpid()}"


def unit_kind(kind: str) -> UnitKind:
    try:
        return UnitKind(kind)
    except ValueError:
        known = ", ".join(UnitKind)
        raise InvalidDefinition(f"unknown step kind {kind!r}; one of {known}") from None


def unit_body(job: BatchJob, name: str, kind: UnitKind) -> StepBody:
    """The step to run: a compensation runs the step's ``compensate`` as a tasklet."""
    try:
        spec = job.spec.step(name)
    except KeyError:
        raise InvalidDefinition(f"job '{job.name}' has no step '{name}'") from None
    if kind is UnitKind.COMPENSATION:
        if not spec.compensate:
            raise InvalidDefinition(f"step '{name}' has no compensate")
        return StepBody(name=spec.name, tasklet=spec.compensate)
    if kind is UnitKind.CALLBACK and spec not in (job.spec.on_complete, job.spec.on_failure):
        raise InvalidDefinition(f"step '{name}' is not a callback of job '{job.name}'")
    return spec


@dataclass(frozen=True)
class Unit:
    """An opened unit: its execution and step row, the job and the body it runs."""

    execution: JobExecution
    step: StepExecution
    job: BatchJob
    body: StepBody
    partition_args: Any


def open_unit(
    repo: JobRepository, execution_id: int, step_name: str, partition: int | None, kind: UnitKind
) -> Unit | None:
    """The unit, opened; None when the job is STOPPING (a step does not start then)."""
    admitted: list[tuple[BatchJob, StepBody]] = []

    def admit(execution: JobExecution) -> bool:
        """May this unit run? Decided before its step row is written."""
        job = job_of(execution)
        body = unit_body(job, step_name, kind)
        if kind is UnitKind.STEP and execution.status is BatchStatus.STOPPING:
            return False
        if not execution.status.running:
            raise InvalidDefinition(
                f"execution {execution_id} is {execution.status.value}; its steps cannot run"
            )
        if kind is UnitKind.STEP and (body.partitions is None) != (partition is None):
            need = "needs a partition index" if partition is None else "is not partitioned"
            raise InvalidDefinition(f"step '{step_name}' {need}")
        admitted[:] = [(job, body)]
        return True

    opened = Retrier(f"step '{step_name}'")(
        lambda: repo.open_unit(
            execution_id, step_name, partition, worker=worker_name(), kind=kind, admit=admit
        )
    )
    if opened is None:
        return None
    ((job, body),) = admitted
    events.emit("open", step_id=opened.step.id)
    return Unit(opened.execution, opened.step, job, body, opened.partition_args)


def unit_context(
    repo: JobRepository,
    unit: Unit,
    stop: threading.Event,
    timeout: threading.Event | None = None,
) -> StepContext:
    """What the unit's code sees (``ctx``), wired to the repository; ``stop`` and
    ``timeout`` (its timeoutSeconds reached) make ``ctx.stop_requested``."""
    execution, step = unit.execution, unit.step
    shared: Any = dict(execution.context)
    if step.partition is not None:
        shared = MappingProxyType(shared)  # partitions run side by side: read-only
    ctx = StepContext(
        job_name=unit.job.name,
        execution_id=execution.id,
        instance_id=execution.instance_id,
        step_name=step.step_name,
        partition_index=step.partition,
        params=unseal(execution.parameters, os.environ),
        context=shared,
        step_context=dict(step.context),
        engine=repo.engine,
        source_dir=Path(execution.source_dir) if execution.source_dir else None,
        attempt=execution.attempt,
        partition=unit.partition_args,
        _results=lambda s: repo.results(execution.instance_id, s),
        _add_partitions=_partition_adder(repo, unit),
        _stop=stop,
        _timeout=timeout or threading.Event(),
    )
    if step.kind == UnitKind.COMPENSATION:
        ctx.compensation = _compensation(repo, execution, step)
    elif step.kind == UnitKind.CALLBACK:
        ctx.execution = {
            "id": execution.id,
            "status": os.environ.get("BATON_OUTCOME") or execution.status.value,
            "error": os.environ.get("BATON_OUTCOME_ERROR", ""),
        }
    return ctx


def _partition_adder(repo: JobRepository, unit: Unit) -> Callable[[str, Sequence[Any]], list[int]]:
    """``ctx.add_partitions``: more work for a declared partitioned step."""
    execution, job = unit.execution, unit.job

    def add(target: str, items: Sequence[Any]) -> list[int]:
        try:
            declared = job.spec.step(target)
        except KeyError:
            raise InvalidDefinition(f"add_partitions: job has no step '{target}'") from None
        if declared.partitions is None:
            raise InvalidDefinition(f"add_partitions: step '{target}' is not partitioned")
        if target not in repo.partition_counts(execution.instance_id):
            plan_partitions(repo, execution, job, target)
        added = repo.add_partitions(execution.instance_id, target, list(items), unit.step.step_name)
        events.emit("partitions", step=target)
        return added

    return add


def _compensation(
    repo: JobRepository, execution: JobExecution, step: StepExecution
) -> dict[str, Any]:
    """``ctx.compensation``: what is being undone and why (the failed step's error,
    else the execution's, else the first failed step's)."""
    steps = repo.step_executions(execution.id)
    failed = next(
        (
            s
            for s in steps
            if s.kind == UnitKind.STEP
            and s.step_name == step.step_name
            and s.partition == step.partition
            and s.status is BatchStatus.FAILED
        ),
        None,
    )
    error = (failed.exit_description if failed else execution.exit_description) or ""
    if not error:
        first = next(
            (s for s in steps if s.kind == UnitKind.STEP and s.status is BatchStatus.FAILED),
            None,
        )
        error = first.exit_description if first else "abandoned"
    return {
        "step": step.step_name,
        "partition": step.partition,
        "error": error.split("\n", 1)[0],
        "context": dict(execution.context),
    }
