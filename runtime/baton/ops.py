"""JobOperator (start/stop/restart/abandon), JobExplorer (read-only queries) and a
caching JobExplorer: the library API the CLI is a thin shell over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.core.errors import (
    BatonError,
    InvalidParameters,
    JobExecutionAlreadyRunning,
    UnexpectedJobExecutionState,
    UnknownJob,
)
from baton.core.parameters import JobParameter, ParamType
from baton.core.status import ABANDONABLE, BatchStatus, can_abandon, can_stop
from baton.executors.local import LocalExecutor, Tick
from baton.executors.owner import owner_alive, this_owner
from baton.flow.engine import ABANDONED, FlowState, compensates_on_abandon
from baton.registry import RegisteredJob, check_components
from baton.repository import (
    JobExecution,
    JobInstance,
    JobRepository,
    SkippedItem,
    StepExecution,
)
from baton.repository.store import jsonable
from baton.spec.model import BatchJob

Launched = Callable[[JobExecution], None]


@dataclass
class Listing:
    """Executions as a listing shows them: each with whether its process is gone
    (True: it ran on this host and is gone; False: alive; None: not running, or it
    runs elsewhere and cannot be told from here), and those the listing recovered."""

    rows: list[tuple[JobExecution, bool | None]] = field(default_factory=list)
    recovered: list[JobExecution] = field(default_factory=list)


class JobExplorer:
    """Read-only queries over the job repository."""

    def __init__(self, repository: JobRepository):
        self.repository = repository

    def job_names(self) -> list[str]:
        return self.repository.job_names()

    def job_summaries(self) -> list[dict[str, Any]]:
        return self.repository.job_summaries()

    def instances(self, job: str) -> list[JobInstance]:
        found = self.repository.instances(job)
        if not found and job not in self.repository.job_names():
            raise UnknownJob(f"no job named '{job}' in the repository")
        return found

    def instance_count(self, job: str) -> int:
        return len(self.instances(job))

    def execution(self, execution_id: int) -> JobExecution:
        return self.repository.get_execution(execution_id)

    def executions(
        self,
        job: str | None = None,
        *,
        running: bool = False,
        instance_id: int | None = None,
        limit: int | None = None,
    ) -> list[JobExecution]:
        if job is not None and job not in self.repository.job_names():
            raise UnknownJob(f"no job named '{job}' in the repository")
        return self.repository.executions(
            job=job, running=running, instance_id=instance_id, limit=limit
        )

    def execution_count(self, job: str) -> int:
        return len(self.executions(job))

    def running_executions(self, job: str | None = None) -> list[JobExecution]:
        return self.executions(job, running=True)

    def parameters(self, execution_id: int) -> dict[str, Any]:
        return self.execution(execution_id).parameters.as_json()

    def step_executions(self, execution_id: int) -> list[StepExecution]:
        self.execution(execution_id)
        return self.repository.step_executions(execution_id)

    def step_execution(self, step_execution_id: int) -> StepExecution:
        return self.repository.get_step(step_execution_id)

    def skipped_items(self, execution_id: int) -> list[SkippedItem]:
        self.execution(execution_id)
        return self.repository.skipped_items(execution_id)

    def summary(self, execution_id: int) -> dict[str, Any]:
        return summarize(self.execution(execution_id), self.step_executions(execution_id))


class CachingJobExplorer(JobExplorer):
    """A JobExplorer that remembers answers: finished executions forever (they cannot
    change), everything else for ``ttl`` seconds. For dashboards that poll."""

    def __init__(self, repository: JobRepository, ttl: float = 2.0):
        super().__init__(repository)
        self.ttl = ttl
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def _cached(
        self,
        key: tuple[Any, ...],
        load: Callable[[], Any],
        forever: Callable[[Any], bool] = lambda _: False,
    ) -> Any:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and (hit[0] == float("inf") or now - hit[0] < self.ttl):
            return hit[1]
        value = load()
        self._cache[key] = (float("inf") if forever(value) else now, value)
        return value

    def execution(self, execution_id: int) -> JobExecution:
        return self._cached(  # type: ignore[no-any-return]
            ("execution", execution_id),
            lambda: super(CachingJobExplorer, self).execution(execution_id),
            lambda e: e.status.terminal,
        )

    def step_executions(self, execution_id: int) -> list[StepExecution]:
        return self._cached(  # type: ignore[no-any-return]
            ("steps", execution_id),
            lambda: super(CachingJobExplorer, self).step_executions(execution_id),
            lambda _: self.execution(execution_id).status.terminal,
        )

    def executions(
        self,
        job: str | None = None,
        *,
        running: bool = False,
        instance_id: int | None = None,
        limit: int | None = None,
    ) -> list[JobExecution]:
        return self._cached(  # type: ignore[no-any-return]
            ("executions", job, running, instance_id, limit),
            lambda: super(CachingJobExplorer, self).executions(
                job, running=running, instance_id=instance_id, limit=limit
            ),
        )

    def job_names(self) -> list[str]:
        return self._cached(  # type: ignore[no-any-return]
            ("job_names",), lambda: super(CachingJobExplorer, self).job_names()
        )

    def invalidate(self) -> None:
        self._cache.clear()


class JobOperator:
    """Start, restart, stop and abandon executions; run them with the local executor."""

    def __init__(
        self,
        repository: JobRepository,
        *,
        in_process: bool = False,
        on_tick: Tick | None = None,
        check_imports: bool = True,
    ):
        self.repository = repository
        self.explorer = JobExplorer(repository)
        self.in_process = in_process
        self.on_tick = on_tick
        self.check_imports = check_imports

    # ------------------------------------------------------------ launching

    def launch(
        self,
        job: BatchJob | RegisteredJob,
        params: Mapping[str, Any] | None = None,
        *,
        source_dir: Path | None = None,
        context: Mapping[str, Any] | None = None,
        next_instance: bool = False,
    ) -> JobExecution:
        """Create the execution (restart rules applied) without running it; ``context``
        seeds the job context of a new instance. ``next_instance``: a new instance, its
        incrementer (``run.id``) taken inside the launch transaction, so concurrent
        launches never share one."""
        if isinstance(job, RegisteredJob):
            source_dir = source_dir or job.source_dir
            job = job.job
        raw = dict(params or {})
        incrementer = job.spec.incrementer if next_instance else None
        if next_instance:
            if not incrementer:
                raise InvalidParameters(
                    f"job '{job.name}' has no incrementer; add 'incrementer: run.id'"
                )
            raw.pop(incrementer, None)
        bound = job.spec.bind(raw)
        if self.check_imports:
            check_imports(job, source_dir)
        if not next_instance:
            self._recover_dead_last(job.name, bound.key())
        return self.repository.launch(
            job.name,
            job.dump(),
            bound,
            prevent_restart=job.spec.prevent_restart,
            source_dir=str(source_dir.resolve()) if source_dir else None,
            owner=this_owner(),
            context=context,
            next_id=incrementer,
        )

    def run(self, execution: JobExecution) -> JobExecution:
        """Run a STARTING execution to a terminal state on this machine."""
        executor = LocalExecutor(self.repository, in_process=self.in_process, on_tick=self.on_tick)
        return executor.run(execution)

    def start(
        self,
        job: BatchJob | RegisteredJob,
        params: Mapping[str, Any] | None = None,
        *,
        source_dir: Path | None = None,
        on_launched: Launched | None = None,
        context: Mapping[str, Any] | None = None,
        next_instance: bool = False,
    ) -> JobExecution:
        execution = self.launch(
            job, params, source_dir=source_dir, context=context, next_instance=next_instance
        )
        if on_launched:
            on_launched(execution)
        return self.run(execution)

    def start_next_instance(
        self,
        job: BatchJob | RegisteredJob,
        params: Mapping[str, Any] | None = None,
        *,
        source_dir: Path | None = None,
        on_launched: Launched | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> JobExecution:
        """A new instance: the incrementer's ``run.id`` one past the largest used, taken
        in the launch transaction (concurrent calls get distinct instances)."""
        return self.start(
            job,
            params,
            source_dir=source_dir,
            on_launched=on_launched,
            context=context,
            next_instance=True,
        )

    def restart(self, execution_id: int, *, on_launched: Launched | None = None) -> JobExecution:
        """A new execution of the same instance, resuming from its checkpoints.

        Uses the job definition snapshotted at launch, so no manifest is needed."""
        self.recover(execution_id, quiet=True)
        old = self.repository.get_execution(execution_id)
        # The restart table applies to the instance's last execution, which may be newer.
        job = BatchJob.model_validate(old.job_spec)
        execution = self.repository.launch(
            job.name,
            old.job_spec,
            old.parameters,
            prevent_restart=job.spec.prevent_restart,
            source_dir=old.source_dir,
            owner=this_owner(),
        )
        if on_launched:
            on_launched(execution)
        return self.run(execution)

    # ------------------------------------------------------------ control

    def stop(self, execution_id: int) -> JobExecution:
        """Ask a running execution to stop at its next chunk boundary (STOPPING).
        An execution whose process is gone is marked STOPPED at once."""
        execution = self.repository.get_execution(execution_id)
        if execution.status is BatchStatus.STOPPING:
            return execution
        if not can_stop(execution.status):
            raise UnexpectedJobExecutionState(
                f"cannot stop execution {execution_id}: it is {execution.status.value}, not running"
            )
        if owner_alive(execution.owner) is False:
            return self.repository.end_orphaned(
                execution, BatchStatus.STOPPED, "stopped; its process was gone", "stop"
            )
        return self.repository.transition(
            execution_id,
            BatchStatus.STOPPING,
            allowed=(BatchStatus.STARTING, BatchStatus.STARTED),
            action="stop",
        )

    def abandon(self, execution_id: int) -> JobExecution:
        """Mark a stopped or failed execution ABANDONED: its instance never restarts."""
        execution = self.repository.get_execution(execution_id)
        if execution.status.running:
            self.recover(execution_id, quiet=True)
            execution = self.repository.get_execution(execution_id)
        if not can_abandon(execution.status):
            hint = "; stop it first" if execution.status.running else ""
            raise UnexpectedJobExecutionState(
                f"cannot abandon execution {execution_id}: it is {execution.status.value}{hint}"
            )
        job = BatchJob.model_validate(execution.job_spec)
        if self._compensations_due(execution, job):
            compensating = self.repository.transition(
                execution_id,
                BatchStatus.COMPENSATING,
                allowed=(execution.status,),
                action="abandon",
                exit_code=ABANDONED,
                description="abandoned; compensating",
            )
            executor = LocalExecutor(
                self.repository, in_process=self.in_process, on_tick=self.on_tick
            )
            return executor.run(compensating)
        return self.repository.transition(
            execution_id,
            BatchStatus.ABANDONED,
            allowed=ABANDONABLE,
            action="abandon",
            exit_code=ABANDONED,
            end=True,
        )

    def _compensations_due(self, execution: JobExecution, job: BatchJob) -> bool:
        state = FlowState.of(
            execution,
            self.repository.step_executions(execution.id),
            {k: s.status for k, s in self.repository.previous_steps(execution).items()},
            self.repository.partition_counts(execution.instance_id),
        )
        return compensates_on_abandon(job.spec, state)

    def recover(
        self, execution_id: int, *, force: bool = False, quiet: bool = False
    ) -> JobExecution:
        """Mark an execution FAILED whose process died while it ran (left STARTED), so it
        can be restarted. ``force`` when its process ran on another host."""
        execution = self.repository.get_execution(execution_id)
        if not execution.status.running:
            if quiet:
                return execution
            raise UnexpectedJobExecutionState(
                f"cannot recover execution {execution_id}: it is {execution.status.value}, "
                "not running"
            )
        alive = owner_alive(execution.owner)
        if execution.owner is None and execution.status is BatchStatus.STARTING:
            alive = None
        if alive is True or (alive is None and not force):
            if quiet:
                return execution
            where = f"owned by {execution.owner}" if execution.owner else "not started here"
            raise JobExecutionAlreadyRunning(
                f"execution {execution_id} is {execution.status.value} ({where}); "
                + ("its process is alive" if alive else "use --force if its process is gone")
            )
        return self.repository.end_orphaned(
            execution, BatchStatus.FAILED, "recovered: the process running it was gone", "recover"
        )

    def list_executions(
        self, job: str | None = None, *, running: bool = False, limit: int | None = None
    ) -> Listing:
        """Executions, newest first, as ``baton executions`` lists them. One that the
        repository says is running but whose process ran on this host and is gone is
        recovered first (FAILED, as ``recover`` and ``restart`` do), so that ``running``
        lists only what runs; if that write cannot be made (the database is busy, or
        the execution changed meanwhile), it is listed as found, its process marked gone."""
        listing = Listing()
        for execution in self.explorer.executions(job, running=running, limit=limit):
            gone = _process_gone(execution)
            if gone:
                try:
                    recovered = self.recover(execution.id, quiet=True)
                except BatonError:  # busy, or changed meanwhile: list it as found
                    recovered = execution
                if not recovered.status.running:
                    listing.recovered.append(recovered)
                    if running:
                        continue
                    execution, gone = recovered, None
            listing.rows.append((execution, gone))
        return listing

    def _recover_dead_last(self, job_name: str, key: str) -> None:
        """Before a launch: the instance's last execution, left running by a process that
        is gone, becomes FAILED so the restart rules see what really happened."""
        last = self.repository.last_execution(job_name, key)
        if last is not None and last.status.running:
            self.recover(last.id, quiet=True)


def _process_gone(execution: JobExecution) -> bool | None:
    """For a running execution: whether the process that runs it (on this host) is gone."""
    if not execution.status.running:
        return None
    alive = owner_alive(execution.owner)
    return None if alive is None else not alive


def check_imports(job: BatchJob, source_dir: Path | None) -> None:
    """Resolve every ``module:attr`` and exception name before anything is recorded,
    so a typo is one clear error instead of a failed execution."""
    check_components(job, source_dir)


# ---------------------------------------------------------------- summaries


def step_summary(s: StepExecution) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.step_name,
        "partition": s.partition,
        "status": s.status.value,
        "readCount": s.read_count,
        "writeCount": s.write_count,
        "filterCount": s.filter_count,
        "skipCount": s.skip_count,
        "readSkipCount": s.read_skip_count,
        "processSkipCount": s.process_skip_count,
        "writeSkipCount": s.write_skip_count,
        "commitCount": s.commit_count,
        "rollbackCount": s.rollback_count,
        "totalCount": s.total_count,
        "exitCode": s.exit_code,
        "exitDescription": s.exit_description,
        "startTime": _iso(s.start_time),
        "endTime": _iso(s.end_time),
        "worker": s.worker,
        "peakMemoryKb": s.peak_memory_kb,
        "incarnations": s.incarnations,
        "result": s.result,
    }


def summarize(e: JobExecution, steps: list[StepExecution]) -> dict[str, Any]:
    return {
        "id": e.id,
        "instanceId": e.instance_id,
        "job": e.job_name,
        "status": e.status.value,
        "exitCode": e.exit_code,
        "exitDescription": e.exit_description,
        "attempt": e.attempt,
        "parameters": e.parameters.as_json(),
        "identifyingParameters": [p.name for p in e.parameters.items if p.identifying],
        "createTime": _iso(e.created_at),
        "startTime": _iso(e.start_time),
        "endTime": _iso(e.end_time),
        "context": jsonable(e.context),  # datetime, Decimal, UUID as text
        "steps": [step_summary(s) for s in steps],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


__all__ = [
    "CachingJobExplorer",
    "JobExplorer",
    "JobOperator",
    "JobParameter",
    "Listing",
    "ParamType",
    "step_summary",
    "summarize",
]
