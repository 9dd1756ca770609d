"""Run one unit of a job execution — a step, a partition of a step, a compensation or a
callback — and record how it ended.

This is what a local subprocess runs (``baton step``) and what a pod runs: it needs
only the repository URL, the execution id and the unit, because the job spec is
snapshotted into the execution at launch. Its exit code is the contract of
:class:`baton.core.status.ExitCode`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import resource
import threading
from typing import TYPE_CHECKING, Any

from baton.core.counts import Counts
from baton.core.entities import StepExecution
from baton.core.errors import BatonError, DatabaseUnavailable, InvalidDefinition, StepFenced
from baton.core.logformat import bind_unit, unbind_unit
from baton.core.status import DEADLINE_EXCEEDED, BatchStatus, ExitCode, UnitKind
from baton.repository import JobRepository
from baton.repository.retry import Retrier
from baton.spec.binding import bind_args
from baton.spec.model import StepBody
from baton.spec.refs import add_import_paths, build
from baton.step import deadline
from baton.step.context import StepContext
from baton.step.failures import FATAL_ERRORS, describe_failure, error_text
from baton.step.outcome import CONTINUE, Outcome
from baton.step.signals import stop_on_signals
from baton.step.unit import Unit, open_unit, unit_context, unit_kind

if TYPE_CHECKING:
    from baton.step.chunk import ChunkStep

log = logging.getLogger("baton.step")


def peak_memory_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_step(
    repo: JobRepository,
    execution_id: int,
    step_name: str,
    partition: int | None = None,
    *,
    kind: str = UnitKind.STEP,
    stop: threading.Event | None = None,
) -> ExitCode:
    """Run the unit to a terminal state (or to its time budget) and return the exit code.

    The unit costs two transactions besides its work's own (checkpoints): one opens it
    (``JobRepository.open_unit``: execution, parameters, partition args, schema check
    and the step row), one records its end."""
    unit = open_unit(repo, execution_id, step_name, partition, unit_kind(kind))
    if unit is None:
        return ExitCode.STOPPED
    add_import_paths([unit.execution.source_dir, os.getcwd()])
    if unit.step.status is BatchStatus.COMPLETED:
        return ExitCode.COMPLETED
    stop, expired = stop or threading.Event(), threading.Event()
    ctx = unit_context(repo, unit, stop, expired)
    token = bind_unit(ctx.log_fields)
    try:
        with stop_on_signals(stop), _timeout(repo, unit, expired):
            return _execute(repo, unit, ctx)
    finally:
        unbind_unit(token)


def _timeout(repo: JobRepository, unit: Unit, expired: threading.Event) -> Any:
    """The unit's ``timeoutSeconds`` (see :mod:`baton.step.deadline`): the hard stop
    only where this unit is the whole process (not a thread of the local executor)."""
    timeout = unit.body.timeout_seconds
    grace = deadline.grace_seconds(os.environ)
    left = None
    if timeout is not None:
        left = deadline.time_left(timeout, unit.step.start_time, dt.datetime.now(dt.UTC))
    alone = threading.current_thread() is threading.main_thread()
    kill = (lambda: _killed(repo, unit, grace)) if alone else None
    return deadline.enforced(left, expired, grace, kill)


def _killed(repo: JobRepository, unit: Unit, grace: float) -> None:
    """Still running ``grace`` seconds after the timeout: record the unit FAILED
    (its last checkpoint's counts and context stay) and exit at once."""
    description = _timed_out_text(unit, killed_after=grace)
    log.error("%s", description)
    deadline.run_bounded(
        lambda: repo.finish_step(
            unit.step,
            BatchStatus.FAILED,
            exit_code=DEADLINE_EXCEEDED,
            description=description,
            peak_memory_kb=peak_memory_kb(),
            only_running=True,
        ),
        seconds=5.0,
    )
    deadline.hard_exit(int(ExitCode.FATAL))


def _unit_what(unit: Unit) -> str:
    part = unit.step.partition
    return f"step '{unit.body.name}'" + ("" if part is None else f" partition {part}")


def _timed_out_text(unit: Unit, **how: Any) -> str:
    return deadline.timed_out_description(_unit_what(unit), unit.body.timeout_seconds or 0, **how)


def _execute(repo: JobRepository, unit: Unit, ctx: StepContext) -> ExitCode:
    context_before = ctx.snapshot()
    chunk: ChunkStep | None = None
    try:
        if unit.body.chunk is not None:
            from baton.step.chunk import ChunkStep  # a tasklet's process does without it

            chunk = ChunkStep(
                repo, unit.step, unit.body.chunk, ctx, max_duration=unit.body.max_duration_seconds
            )
            ended = chunk.run()
        else:
            ended = Outcome(BatchStatus.COMPLETED, result=_run_tasklet(unit.body, ctx))
        delta = ctx.changes(context_before)  # a value that cannot be stored fails it here
        if ctx.timed_out:
            chunks = None if chunk is None else ctx.chunk_number
            ended = deadline.overrun(ended, _timed_out_text(unit, chunks=chunks))
            delta = delta if ended.status is BatchStatus.COMPLETED else None
    except DatabaseUnavailable:
        raise
    except StepFenced as e:
        log.error("%s", e)
        return ExitCode.FATAL
    except BaseException as e:
        _record_failure(repo, unit, ctx, e, chunk.counts if chunk is not None else None)
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        fatal = isinstance(e, FATAL_ERRORS) or ctx.timed_out
        return ExitCode.FATAL if fatal else ExitCode.FAILED
    if ctx.stop_requested and not ctx.timed_out:
        _request_job_stop(repo, unit.execution.id)
    return _completed(repo, unit, ctx, ended, delta)


def _record_failure(
    repo: JobRepository, unit: Unit, ctx: StepContext, e: BaseException, counts: Counts | None
) -> None:
    """Record the unit FAILED, with the error's line and traceback."""
    log.error("step %s failed: %s", unit.body.name, error_text(e))
    description, code = describe_failure(e), "FAILED"
    if ctx.timed_out:  # failed while stopping for its timeout: the timeout is why
        head = deadline.timed_out_head(_unit_what(unit), unit.body.timeout_seconds or 0)
        description, code = f"{head}; then {description}", DEADLINE_EXCEEDED
    _finish_step(
        repo,
        unit.step,
        BatchStatus.FAILED,
        context=ctx.step_context,
        exit_code=code,
        description=description,
        peak_memory_kb=peak_memory_kb(),
        counts=counts,
        only_running=True,
    )


def _completed(
    repo: JobRepository, unit: Unit, ctx: StepContext, ended: Outcome, delta: Any
) -> ExitCode:
    """Record how the work ended; a unit someone else ended meanwhile keeps that end."""
    if not _finish_step(
        repo,
        unit.step,
        ended.status,
        counts=ended.counts,
        context=ctx.step_context,
        exit_code=ended.exit_code,
        description=ended.description,
        result=ended.result,
        peak_memory_kb=peak_memory_kb(),
        context_delta=delta,
        only_running=True,
    ):
        log.error(
            "step execution %s ('%s') was ended by someone else (declared lost or recovered); "
            "its outcome %s is not recorded",
            unit.step.id,
            unit.body.name,
            ended.status.value,
        )
        return ExitCode.FATAL
    if ended.exit_code == CONTINUE:
        return ExitCode.CONTINUE
    if ended.exit_code == DEADLINE_EXCEEDED:
        return ExitCode.FATAL  # a pod retry would only time out again: not retried
    return ExitCode.for_status(ended.status)


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
    target = build(spec.tasklet, ctx.offered(), bind_args(spec.tasklet_args, ctx, "taskletArgs"))
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
            action="stop",
        )
    except BatonError as e:
        log.warning("could not mark execution %s STOPPING: %s", execution_id, e)
