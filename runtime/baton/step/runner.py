"""The step entrypoint: run one step (or one partition) of a job execution.

This is what a local subprocess runs (``baton step``) and what a pod will run: it needs
only the repository URL, the execution id and the step name, because the job spec is
snapshotted into the execution at launch. Its exit code is the contract of
:class:`baton.domain.ExitCode`.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from baton.domain import BatchStatus, ExitCode
from baton.errors import BatonError, DatabaseUnavailable, ImportFailed, InvalidDefinition
from baton.loading import add_import_paths, build
from baton.repository import JobExecution, JobRepository, StepExecution
from baton.spec import BatchJob, StepSpec
from baton.step.chunk import ChunkStep, SkipLimitExceeded, describe_failure, error_text
from baton.step.context import StepContext

log = logging.getLogger("baton.step")

FATAL_ERRORS = (ImportFailed, InvalidDefinition, SkipLimitExceeded)


def worker_name() -> str:
    return os.environ.get("BATON_WORKER") or f"{socket.gethostname()}:{os.getpid()}"


def peak_memory_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@contextmanager
def stop_on_signals(event: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT ask for a stop at the next chunk boundary instead of killing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        log.warning("signal %s: stopping after the current chunk", signal.Signals(signum).name)
        event.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_step(
    repo: JobRepository,
    execution_id: int,
    step_name: str,
    partition: int | None = None,
    *,
    stop: threading.Event | None = None,
) -> ExitCode:
    """Run the step to a terminal state and return the process exit code."""
    execution = repo.get_execution(execution_id)
    job = BatchJob.model_validate(execution.job_spec)
    try:
        spec = job.spec.step(step_name)
    except KeyError:
        raise InvalidDefinition(f"job '{job.name}' has no step '{step_name}'") from None
    if execution.status is BatchStatus.STOPPING:
        return ExitCode.STOPPED
    if not execution.status.running:
        raise InvalidDefinition(
            f"execution {execution_id} is {execution.status.value}; its steps cannot run"
        )
    add_import_paths([execution.source_dir, os.getcwd()])
    step = repo.open_step(execution, step_name, partition, worker=worker_name(), fresh=False)
    if step.status is BatchStatus.COMPLETED:
        return ExitCode.COMPLETED
    stop = stop or threading.Event()
    ctx = StepContext(
        job_name=job.name,
        execution_id=execution.id,
        instance_id=execution.instance_id,
        step_name=step_name,
        partition=partition,
        params=execution.parameters.values(),
        context=dict(execution.context),
        step_context=dict(step.context),
        engine=repo.engine,
        source_dir=Path(execution.source_dir) if execution.source_dir else None,
        attempt=execution.attempt,
        _stop=stop,
    )
    with stop_on_signals(stop):
        return _execute(repo, execution, step, spec, ctx)


def _execute(
    repo: JobRepository,
    execution: JobExecution,
    step: StepExecution,
    spec: StepSpec,
    ctx: StepContext,
) -> ExitCode:
    job_context_before = dict(ctx.context)
    chunk: ChunkStep | None = None
    try:
        if spec.chunk is not None:
            chunk = ChunkStep(repo, step, spec.chunk, ctx)
            outcome = chunk.run()
            status, counts, description, result = (
                outcome.status,
                outcome.counts,
                outcome.description,
                None,
            )
        else:
            result = _run_tasklet(spec, ctx)
            status, counts, description = BatchStatus.COMPLETED, None, ""
    except DatabaseUnavailable:
        raise
    except BaseException as e:
        fatal = isinstance(e, FATAL_ERRORS)
        log.error("step %s failed: %s", spec.name, error_text(e))
        repo.finish_step(
            step,
            BatchStatus.FAILED,
            context=ctx.step_context,
            exit_code="FAILED",
            description=describe_failure(e),
            peak_memory_kb=peak_memory_kb(),
            counts=chunk.counts if chunk is not None else None,
        )
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        return ExitCode.FATAL if fatal else ExitCode.FAILED
    if ctx.stop_requested:
        _request_job_stop(repo, execution.id)
    changed = ctx.context != job_context_before
    repo.finish_step(
        step,
        status,
        counts=counts,
        context=ctx.step_context,
        description=description,
        result=result,
        peak_memory_kb=peak_memory_kb(),
        job_context=ctx.context if changed else None,
    )
    return ExitCode.for_status(status)


def _run_tasklet(spec: StepSpec, ctx: StepContext) -> Any:
    assert spec.tasklet is not None
    target = build(spec.tasklet, ctx.offered(), spec.tasklet_args)
    if hasattr(target, "execute"):
        target = target.execute
    if not callable(target):
        raise InvalidDefinition(f"tasklet {spec.tasklet} is not callable")
    return target(ctx)


def _request_job_stop(repo: JobRepository, execution_id: int) -> None:
    """A signal stopped this step: make the job STOPPING so nothing else starts."""
    try:
        repo.transition(
            execution_id,
            BatchStatus.STOPPING,
            allowed=(BatchStatus.STARTING, BatchStatus.STARTED, BatchStatus.STOPPING),
            action="stop",
        )
    except BatonError as e:
        log.warning("could not mark execution %s STOPPING: %s", execution_id, e)
