"""The step entrypoint: run one unit of a job execution — a step, a partition of a
step, a compensation or a callback.

This is what a local subprocess runs (``baton step``) and what a pod runs: it needs
only the repository URL, the execution id and the unit, because the job spec is
snapshotted into the execution at launch. Its exit code is the contract of
:class:`baton.core.status.ExitCode`.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from baton.core.errors import (
    BatonError,
    DatabaseUnavailable,
    ImportFailed,
    InvalidDefinition,
    StepFenced,
)
from baton.core.status import BatchStatus, ExitCode
from baton.flow.partitions import plan_partitions
from baton.loading import add_import_paths, build
from baton.repository import JobExecution, JobRepository, StepExecution
from baton.repository.retry import Retrier
from baton.spec.model import BatchJob, StepBody
from baton.step.chunk import CONTINUE, ChunkStep, SkipLimitExceeded, describe_failure, error_text
from baton.step.context import StepContext

log = logging.getLogger("baton.step")

FATAL_ERRORS = (ImportFailed, InvalidDefinition, SkipLimitExceeded)
KINDS = ("step", "compensation", "callback")


def worker_name() -> str:
    """The pod name in a cluster (its hostname), else host:pid."""
    if os.environ.get("BATON_WORKER"):
        return os.environ["BATON_WORKER"]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return socket.gethostname()
    return f"{socket.gethostname()}:{os.getpid()}"


def peak_memory_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@contextmanager
def stop_on_signals(event: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT ask for a stop at the next chunk boundary instead of killing.

    In a pod (BATON_EXECUTOR=kubernetes) the chunk loop then continues in a new pod
    unless the job is STOPPING; and so that a step which cannot reach a boundary in
    time is not SIGKILLed (exit 137, counted against the retry budget), the process
    exits 9 (continue: the new pod resumes from the last checkpoint, as after a kill)
    a few seconds before the pod's grace period (BATON_TERMINATION_GRACE_SECONDS) ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    grace = os.environ.get("BATON_TERMINATION_GRACE_SECONDS", "")
    in_pod = os.environ.get("BATON_EXECUTOR") == "kubernetes"
    timers: list[threading.Timer] = []

    def last_resort() -> None:
        log.error("still running at the end of the pod's grace period: exiting to continue")
        logging.shutdown()
        os._exit(int(ExitCode.CONTINUE))

    def handler(signum: int, _frame: Any) -> None:
        log.warning("signal %s: stopping after the current chunk", signal.Signals(signum).name)
        if in_pod and grace.isdigit() and not event.is_set():
            timer = threading.Timer(max(1.0, int(grace) - 5.0), last_resort)
            timer.daemon = True
            timer.start()
            timers.append(timer)
        event.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for t in timers:
            t.cancel()


def _unit_spec(job: BatchJob, name: str, kind: str) -> StepBody:
    """The step to run: a compensation runs the step's ``compensate`` as a tasklet."""
    try:
        spec = job.spec.step(name)
    except KeyError:
        raise InvalidDefinition(f"job '{job.name}' has no step '{name}'") from None
    if kind == "compensation":
        if not spec.compensate:
            raise InvalidDefinition(f"step '{name}' has no compensate")
        return StepBody(name=spec.name, tasklet=spec.compensate)
    if kind == "callback" and spec not in (job.spec.on_complete, job.spec.on_failure):
        raise InvalidDefinition(f"step '{name}' is not a callback of job '{job.name}'")
    return spec


def run_step(
    repo: JobRepository,
    execution_id: int,
    step_name: str,
    partition: int | None = None,
    *,
    kind: str = "step",
    stop: threading.Event | None = None,
) -> ExitCode:
    """Run the unit to a terminal state (or to its time budget) and return the exit code.

    The unit costs two transactions besides its work's own (checkpoints): one opens it
    (``JobRepository.open_unit``: execution, parameters, partition args, schema check
    and the step row), one records its end."""
    if kind not in KINDS:
        raise InvalidDefinition(f"unknown step kind {kind!r}; one of {', '.join(KINDS)}")
    checked: dict[str, Any] = {}

    def admit(execution: JobExecution) -> bool:
        """May this unit run? Decided before its step row is written."""
        job = BatchJob.model_validate(execution.job_spec)
        spec = _unit_spec(job, step_name, kind)
        if kind == "step" and execution.status is BatchStatus.STOPPING:
            return False
        if not execution.status.running:
            raise InvalidDefinition(
                f"execution {execution_id} is {execution.status.value}; its steps cannot run"
            )
        if kind == "step" and (spec.partitions is None) != (partition is None):
            need = "needs a partition index" if partition is None else "is not partitioned"
            raise InvalidDefinition(f"step '{step_name}' {need}")
        checked.update(job=job, spec=spec)
        return True

    opened = Retrier(f"step '{step_name}'")(
        lambda: repo.open_unit(
            execution_id, step_name, partition, worker=worker_name(), kind=kind, admit=admit
        )
    )
    if opened is None:
        return ExitCode.STOPPED
    execution, step = opened.execution, opened.step
    add_import_paths([execution.source_dir, os.getcwd()])
    if step.status is BatchStatus.COMPLETED:
        return ExitCode.COMPLETED
    stop = stop or threading.Event()
    ctx = _context(repo, execution, checked["job"], step, stop, opened.partition_args)
    with stop_on_signals(stop):
        return _execute(repo, execution, step, checked["spec"], ctx)


def _context(
    repo: JobRepository,
    execution: JobExecution,
    job: BatchJob,
    step: StepExecution,
    stop: threading.Event,
    partition_args: Any = None,
) -> StepContext:
    shared: Any = dict(execution.context)
    if step.partition is not None:
        shared = MappingProxyType(shared)  # partitions run side by side: read-only

    def add(target: str, items: Sequence[Any]) -> list[int]:
        try:
            declared = job.spec.step(target)
        except KeyError:
            raise InvalidDefinition(f"add_partitions: job has no step '{target}'") from None
        if declared.partitions is None:
            raise InvalidDefinition(f"add_partitions: step '{target}' is not partitioned")
        if target not in repo.partition_counts(execution.instance_id):
            plan_partitions(repo, execution, job, target)
        return repo.add_partitions(execution.instance_id, target, list(items), step.step_name)

    ctx = StepContext(
        job_name=job.name,
        execution_id=execution.id,
        instance_id=execution.instance_id,
        step_name=step.step_name,
        partition_index=step.partition,
        params=execution.parameters.values(),
        context=shared,
        step_context=dict(step.context),
        engine=repo.engine,
        source_dir=Path(execution.source_dir) if execution.source_dir else None,
        attempt=execution.attempt,
        partition=partition_args,
        _results=lambda s: repo.results(execution.instance_id, s),
        _add_partitions=add,
        _stop=stop,
    )
    if step.kind == "compensation":
        failed = next(
            (
                s
                for s in repo.step_executions(execution.id)
                if s.kind == "step"
                and s.step_name == step.step_name
                and s.partition == step.partition
                and s.status is BatchStatus.FAILED
            ),
            None,
        )
        error = (failed.exit_description if failed else execution.exit_description) or ""
        if not error:
            first = next(
                (
                    s
                    for s in repo.step_executions(execution.id)
                    if s.kind == "step" and s.status is BatchStatus.FAILED
                ),
                None,
            )
            error = first.exit_description if first else "abandoned"
        ctx.compensation = {
            "step": step.step_name,
            "partition": step.partition,
            "error": error.split("\n", 1)[0],
            "context": dict(execution.context),
        }
    elif step.kind == "callback":
        ctx.execution = {
            "id": execution.id,
            "status": os.environ.get("BATON_OUTCOME") or execution.status.value,
            "error": os.environ.get("BATON_OUTCOME_ERROR", ""),
        }
    return ctx


def _execute(
    repo: JobRepository,
    execution: JobExecution,
    step: StepExecution,
    spec: StepBody,
    ctx: StepContext,
) -> ExitCode:
    context_before = ctx.snapshot()
    chunk: ChunkStep | None = None
    exit_code: str | None = None
    try:
        if spec.chunk is not None:
            chunk = ChunkStep(repo, step, spec.chunk, ctx, max_duration=spec.max_duration_seconds)
            outcome = chunk.run()
            status, counts, description, result = (
                outcome.status,
                outcome.counts,
                outcome.description,
                None,
            )
            exit_code = outcome.exit_code
        else:
            result = _run_tasklet(spec, ctx)
            status, counts, description = BatchStatus.COMPLETED, None, ""
        delta = ctx.changes(context_before)  # a value that cannot be stored fails it here
    except DatabaseUnavailable:
        raise
    except StepFenced as e:
        log.error("%s", e)
        return ExitCode.FATAL
    except BaseException as e:
        fatal = isinstance(e, FATAL_ERRORS)
        log.error("step %s failed: %s", spec.name, error_text(e))
        _finish_step(
            repo,
            step,
            BatchStatus.FAILED,
            context=ctx.step_context,
            exit_code="FAILED",
            description=describe_failure(e),
            peak_memory_kb=peak_memory_kb(),
            counts=chunk.counts if chunk is not None else None,
            only_running=True,
        )
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        return ExitCode.FATAL if fatal else ExitCode.FAILED
    if ctx.stop_requested:
        _request_job_stop(repo, execution.id)
    if not _finish_step(
        repo,
        step,
        status,
        counts=counts,
        context=ctx.step_context,
        exit_code=exit_code,
        description=description,
        result=result,
        peak_memory_kb=peak_memory_kb(),
        context_delta=delta,
        only_running=True,
    ):
        log.error(
            "step execution %s ('%s') was ended by someone else (declared lost or recovered); "
            "its outcome %s is not recorded",
            step.id,
            spec.name,
            status.value,
        )
        return ExitCode.FATAL
    if exit_code == CONTINUE:
        return ExitCode.CONTINUE
    return ExitCode.for_status(status)


def _finish_step(
    repo: JobRepository, step: StepExecution, status: BatchStatus, **values: Any
) -> bool:
    """``finish_step`` riding out a failover. A retry after a connection drop finds the
    row already ended when the lost commit had landed: it was this process's own end
    if the row says exactly what this process wrote."""
    attempts = 0

    def finish() -> bool:
        nonlocal attempts
        attempts += 1
        return repo.finish_step(step, status, **values)

    retry = Retrier(f"step '{step.step_name}'")
    done = retry(finish)
    if done or attempts == 1:
        return done
    current = retry(lambda: repo.get_step(step.id))
    return (
        current.status is status
        and current.exit_description == (values.get("description") or "")[:20000]
    )


def _run_tasklet(spec: StepBody, ctx: StepContext) -> Any:
    assert spec.tasklet is not None
    target = build(spec.tasklet, ctx.offered(), spec.tasklet_args)
    if hasattr(target, "execute"):
        target = target.execute
    if not callable(target):
        raise InvalidDefinition(f"tasklet {spec.tasklet} is not callable")
    return target(ctx)


def _request_job_stop(repo: JobRepository, execution_id: int) -> None:
    """A signal stopped this step: make the job STOPPING so nothing else starts.
    Not in a pod: there a signal means the pod is going away, and only spec.stop (the
    operator marks the job STOPPING) stops the job."""
    if os.environ.get("BATON_EXECUTOR") == "kubernetes":
        return
    try:
        repo.transition(
            execution_id,
            BatchStatus.STOPPING,
            allowed=(BatchStatus.STARTING, BatchStatus.STARTED, BatchStatus.STOPPING),
            action="stop",
        )
    except BatonError as e:
        log.warning("could not mark execution %s STOPPING: %s", execution_id, e)
