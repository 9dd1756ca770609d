"""JobOperator: the library's one entry point for starting and controlling executions
(the CLI is a thin shell over it). Launching lives here; stop/abandon/recover in
:mod:`baton.launch.control`, listings in :mod:`baton.launch.listing`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from baton.core.entities import JobExecution
from baton.core.errors import InvalidParameters
from baton.executors.local import LocalExecutor, Tick
from baton.executors.owner import this_owner
from baton.explore.explorer import JobExplorer
from baton.launch import control
from baton.launch.listing import Listing, list_executions
from baton.registry.checks import check_components
from baton.registry.jobs import RegisteredJob
from baton.repository import JobRepository
from baton.spec.binding import check_bindings
from baton.spec.model import BatchJob
from baton.spec.snapshot import job_of

Launched = Callable[[JobExecution], None]


class JobOperator:
    """Start, restart, stop and abandon executions; run them with the local executor."""

    def __init__(
        self,
        repository: JobRepository,
        *,
        in_process: bool = False,
        on_tick: Tick | None = None,
        check_imports: bool = True,
        deadline_seconds: float | None = None,
    ):
        self.repository = repository
        self.deadline_seconds = deadline_seconds  # of each execution this runs
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
        check_bindings(job.spec)  # ${params.x} in args: declared, before anything is recorded
        if self.check_imports:  # a typo is one clear error before anything is recorded
            check_components(job, source_dir)
        if not next_instance:
            control.recover_dead_last(self.repository, job.name, bound.key())
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
        """Run a STARTING (or COMPENSATING) execution to a terminal state on this machine."""
        executor = LocalExecutor(
            self.repository,
            in_process=self.in_process,
            on_tick=self.on_tick,
            deadline_seconds=self.deadline_seconds,
        )
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
        execution = self.relaunch(execution_id)
        if on_launched:
            on_launched(execution)
        return self.run(execution)

    def relaunch(self, execution_id: int) -> JobExecution:
        """The restart's launch without running it: the next execution of the instance
        (the restart table applies to its last execution, which may be newer)."""
        control.recover(self.repository, execution_id, quiet=True)
        old = self.repository.get_execution(execution_id)
        job = job_of(old)
        return self.repository.launch(
            job.name,
            old.job_spec,
            old.parameters,
            prevent_restart=job.spec.prevent_restart,
            source_dir=old.source_dir,
            owner=this_owner(),
        )

    # ------------------------------------------------------------ control

    def stop(self, execution_id: int) -> JobExecution:
        """Ask a running execution to stop at its next chunk boundary (STOPPING).
        An execution whose process is gone is marked STOPPED at once."""
        return control.stop(self.repository, execution_id)

    def abandon(self, execution_id: int) -> JobExecution:
        """Mark a stopped or failed execution ABANDONED: its instance never restarts
        (after its compensations, when the job compensates on abandon)."""
        return control.abandon(self.repository, execution_id, self.run)

    def recover(
        self, execution_id: int, *, force: bool = False, quiet: bool = False
    ) -> JobExecution:
        """Mark an execution FAILED whose process died while it ran (left STARTED), so it
        can be restarted. ``force`` when its process ran on another host."""
        return control.recover(self.repository, execution_id, force=force, quiet=quiet)

    def list_executions(
        self, job: str | None = None, *, running: bool = False, limit: int | None = None
    ) -> Listing:
        """Executions, newest first, as ``baton executions`` lists them (dead local ones
        recovered first: see :func:`baton.launch.listing.list_executions`)."""
        return list_executions(self.repository, job, running=running, limit=limit)
