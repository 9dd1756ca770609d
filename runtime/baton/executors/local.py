"""The local executor: applies the flow engine's actions on this machine.

Each unit (step, partition, compensation, callback) runs as a subprocess running the
same entrypoint a pod runs (``baton step``), so a unit that crashes, leaks or is killed
cannot take the executor with it; partitions and parallel groups run side by side.
The executor does not poll: it waits on its units' exits and progress events
(:mod:`baton.executors.watch`) and reads the repository when a unit ends, so the
statements it issues grow with the units an execution runs, not with its run time.
Subprocesses die with the executor (PR_SET_PDEATHSIG), so ``kill -9`` of ``baton run``
leaves no orphan writing behind its back; the execution is then recovered as FAILED and
restarts from its last checkpoint.

A database failover is ridden out: every repository call of the executor is retried
with backoff for ``BATON_DB_RETRY_SECONDS`` (as the step processes do theirs). When a
unit gives up (exit 6) or the executor's own budget is spent, the executor records the
execution FAILED — retrying that for one more budget — and exits 6. If even that cannot
reach the database, the execution stays STARTED with this process gone: the next
``baton restart``/``run``/``recover`` of it marks it FAILED, as after a crash.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from baton.core.entities import JobExecution, StepExecution
from baton.core.errors import (
    BatonError,
    DatabaseUnavailable,
    StepFenced,
    UnexpectedJobExecutionState,
)
from baton.core.status import BatchStatus, ExitCode, UnitKind
from baton.executors.admission import admit
from baton.executors.deadline import DeadlineWatch
from baton.executors.forked import can_fork, fork
from baton.executors.logfiles import LOG_DIR_ENV, create, execution_dir, log_root
from baton.executors.progress import LiveProgress
from baton.executors.progress import Tick as Tick  # the type of on_tick
from baton.executors.units import Running, UnitKey, spawn, thread
from baton.executors.watch import UnitWatch, Woken
from baton.flow.actions import Finish, PlanPartitions, RunCallback, RunCompensation, RunStep
from baton.flow.deadlines import finish_of
from baton.flow.engine import next_actions
from baton.flow.partitions import plan_partitions
from baton.flow.state import CONTINUE, FlowState, Key
from baton.repository import JobRepository
from baton.repository.retry import Retrier, retry_budget
from baton.spec.model import BatchJob
from baton.spec.snapshot import job_of
from baton.step.deadline import grace_seconds
from baton.step.entry import unit_argv
from baton.step.signals import handling_stop_signals

log = logging.getLogger("baton.executor")

IDLE_SECONDS = 1.0  # nothing running and nothing to start: look again (never expected)
SHOW_SECONDS = 1.0  # a progress display is redrawn at least this often (no queries)


# ---------------------------------------------------------------- executor


class LocalExecutor:
    """Runs an execution to a terminal state."""

    def __init__(
        self,
        repo: JobRepository,
        *,
        in_process: bool = False,
        on_tick: Tick | None = None,
        poll_seconds: float = 0.5,
        deadline_seconds: float | None = None,
    ):
        self.repo = repo
        self._deadline = DeadlineWatch(repo, deadline_seconds, grace_seconds(os.environ))
        self.in_process = in_process
        self.on_tick = on_tick
        self.poll = poll_seconds  # while queued (maxRunning, cooldown)
        self._watch = UnitWatch()
        self._progress = LiveProgress(repo, on_tick)
        self._signalled = threading.Event()
        self._stop_units = threading.Event()
        self._running: dict[UnitKey, Running] = {}
        self._db = Retrier("baton run")
        self._db_gave_up: str | None = None  # a unit that could not reach the database
        self._log_failed = False  # unit output files could not be made (said once)

    def run(self, execution: JobExecution) -> JobExecution:
        try:
            return self._run(execution)
        finally:
            self._watch.close()

    def _run(self, execution: JobExecution) -> JobExecution:
        job = job_of(execution)
        with self._signals():
            if execution.status is not BatchStatus.COMPENSATING:
                execution = admit(self.repo, execution, job, self._signalled, self.poll)
                if execution.status.terminal:
                    return execution
            previous = self._db(partial(self.repo.previous_steps, execution))
            try:
                final = self._loop(execution, job, previous)
            except DatabaseUnavailable as e:
                self._kill_all()
                ended = self._record_unreachable(execution.id, str(e))
                if ended is not None:
                    raise DatabaseUnavailable(
                        f"execution {execution.id} {ended.value}: {e}"
                    ) from None
                raise
            finally:
                self._kill_all()
        if self._db_gave_up and final.status is BatchStatus.FAILED:
            raise DatabaseUnavailable(f"execution {final.id} FAILED: {self._db_gave_up}")
        return final

    def _record_unreachable(self, execution_id: int, reason: str) -> BatchStatus | None:
        """The executor's own budget is spent: keep trying, for one more budget, to
        record the execution FAILED rather than leave it STARTED. Its status then, or
        None when the database stayed out of reach."""
        description = f"gave up: {reason}"

        def record() -> BatchStatus:
            current = self.repo.get_execution(execution_id)
            if current.status.running:
                current = self.repo.end_orphaned(current, BatchStatus.FAILED, description, "fail")
            return current.status

        try:
            return self._db(record)
        except BatonError as e:
            log.error(
                "execution %s is left %s: %s; `baton restart %s` (or `recover`) marks it "
                "FAILED once the database is back",
                execution_id,
                "STARTED",
                e,
                execution_id,
            )
            return None

    def _loop(
        self,
        execution: JobExecution,
        job: BatchJob,
        previous: dict[Key, StepExecution],
    ) -> JobExecution:
        while True:
            current = self._db(partial(self.repo.get_execution, execution.id))
            execution = self._honour_signal(current)
            execution = self._deadline.check(execution, self._running.values(), self._stop_units)
            if execution.status.terminal:
                raise _ended_elsewhere(execution)
            records = self._db(partial(self.repo.step_executions, execution.id))
            self._progress.records = records
            partitions = self._db(partial(self.repo.partition_counts, execution.instance_id))
            state = FlowState.of(
                execution, records, {k: s.status for k, s in previous.items()}, partitions
            )
            replan = False
            for action in next_actions(job.spec, state):
                if isinstance(action, Finish):
                    if not self._running:
                        return self._finish(execution, finish_of(action, execution, records))
                elif isinstance(action, PlanPartitions):
                    self._db(partial(plan_partitions, self.repo, execution, job, action.step))
                    replan = True
                elif isinstance(action, RunStep):
                    self._start_partitions(execution, action)
                elif isinstance(action, RunCompensation):
                    execution = self._compensating(execution)
                    self._spawn(
                        execution, UnitKey(UnitKind.COMPENSATION, action.step, action.partition)
                    )
                elif isinstance(action, RunCallback):
                    self._spawn(
                        execution,
                        UnitKey(UnitKind.CALLBACK, action.step),
                        env={
                            "BATON_OUTCOME": action.outcome.value,
                            "BATON_OUTCOME_ERROR": action.error,
                        },
                    )
            if not replan:
                self._await_units(execution)

    # ------------------------------------------------------------ units

    def _start_partitions(self, execution: JobExecution, action: RunStep) -> None:
        parts: tuple[int | None, ...] = (None,) if action.partitions is None else action.partitions
        in_flight = sum(
            1 for k in self._running if k.kind is UnitKind.STEP and k.step == action.step
        )
        for p in parts:
            if action.parallelism is not None and in_flight >= action.parallelism:
                return
            key = UnitKey(UnitKind.STEP, action.step, p)
            if key not in self._running:
                self._spawn(execution, key)
                in_flight += 1

    def _spawn(
        self, execution: JobExecution, key: UnitKey, env: dict[str, str] | None = None
    ) -> None:
        if key in self._running:
            return
        if self.in_process:
            running = thread(
                self.repo, execution.id, key, env or {}, self._stop_units, self._watch.wake
            )
        else:
            log_fd = self._log_file(execution, key)
            argv = unit_argv(execution.id, key.step, kind=key.kind, partition=key.partition)
            if can_fork():
                running = fork(self.repo.url, argv, env or {}, log_fd, self._descriptors())
            else:
                running = spawn(self.repo.url, argv, env or {}, log_fd=log_fd)
        self._running[key] = running

    def _descriptors(self) -> list[int]:
        """This process's own pipes and files, which a forked unit closes."""
        fds = list(self._watch.descriptors())
        for r in self._running.values():
            fds += [fd for fd in (*r.watched(), r.log_fd) if fd is not None]
        return fds

    def _log_file(self, execution: JobExecution, key: UnitKey) -> int | None:
        """A new file for this run's output (see :mod:`baton.executors.logfiles`);
        None, said once, when it cannot be made: the output then only goes to stderr."""
        if self._log_failed:
            return None
        try:
            root = log_root(self.repo.engine.url.database, os.environ.get(LOG_DIR_ENV))
            folder = execution_dir(root, self._db(lambda: self.repo.repository_id), execution.id)
            return create(folder, key.kind, key.step, key.partition)
        except OSError as e:
            self._log_failed = True
            log.warning("unit output is not kept (baton logs cannot show it): %s", e)
            return None

    def _await_units(self, execution: JobExecution) -> None:
        """Wait until a unit ends (or an event, a signal or the deadline asks for a
        look at the repository); record any unit that ended unrecorded."""
        while True:
            deadline = self._deadline.wake_in(execution)
            limits = [deadline, None if self._running else IDLE_SECONDS]
            if self.on_tick is not None:
                limits.append(SHOW_SECONDS)  # the display's clock moves on
            timeout = min((t for t in limits if t is not None), default=None)
            woken = self._watch.wait(
                self._running, timeout, lambda _key, unit, event: self._progress.event(unit, event)
            )
            if woken is not Woken.TIMEOUT or not self._running or timeout == deadline:
                break
            if any(r.done() for r in self._running.values()):  # a unit without a pidfd
                break
            self._progress.show(execution, force=True)
        for key, running in list(self._running.items()):
            if running.done():
                del self._running[key]
                self._db(partial(self._record_lost, execution, key, running.exit_code()))
        self._tick(execution)

    def _record_lost(self, execution: JobExecution, key: UnitKey, code: int) -> None:
        """A unit process that ended without recording an end (crash, kill, bad
        definition) is recorded FAILED, so the flow moves on instead of looping."""
        record = next(
            (
                s
                for s in self.repo.step_executions(execution.id)
                if s.step_name == key.step and s.partition == key.partition and s.kind == key.kind
            ),
            None,
        )
        if record is not None and (record.status.terminal or record.exit_code == CONTINUE):
            return
        if (
            record is None
            and code == ExitCode.STOPPED
            and self.repo.get_execution(execution.id).status is BatchStatus.STOPPING
        ):
            return  # it found the job STOPPING and never started: nothing ran
        if record is None:
            record = self.repo.open_step(
                execution, key.step, key.partition, worker=None, kind=key.kind
            )
        description = (
            f"{key.label()}: its process ended with exit code {code} without recording an outcome"
        )
        if code == ExitCode.DATABASE:
            self._db_gave_up = (
                f"{key.label()} could not reach the database for {retry_budget():g}s "
                "(BATON_DB_RETRY_SECONDS)"
            )
            description = f"gave up: {self._db_gave_up}"
        self.repo.finish_step(
            record, BatchStatus.FAILED, exit_code="FAILED", description=description
        )

    def _kill_all(self) -> None:
        for running in self._running.values():
            proc = running.alive_process()
            if proc is not None:
                proc.kill()
                proc.wait()
            running.done()  # a subprocess's last output reaches its log file
        self._running.clear()

    def _tick(self, execution: JobExecution) -> None:
        if self._signalled.is_set():
            self._honour_signal(self._db(partial(self.repo.get_execution, execution.id)))
        self._progress.show(execution, force=True)

    # ------------------------------------------------------------ stop & finish

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: Any) -> None:
            self._signalled.set()
            self._stop_units.set()
            self._watch.wake()
            if signum == signal.SIGTERM:
                for running in self._running.values():
                    proc = running.alive_process()
                    if proc is not None:
                        proc.send_signal(signal.SIGTERM)

        with handling_stop_signals(handler):
            yield

    def _honour_signal(self, execution: JobExecution) -> JobExecution:
        if self._signalled.is_set() and execution.status is BatchStatus.STARTED:
            log.warning("stop requested: finishing the current chunk")
            return self.repo.transition(
                execution.id,
                BatchStatus.STOPPING,
                action="stop",
            )
        return execution

    def _compensating(self, execution: JobExecution) -> JobExecution:
        if execution.status is BatchStatus.COMPENSATING:
            return execution
        return self.repo.transition(
            execution.id,
            BatchStatus.COMPENSATING,
            action="compensate",
        )

    def _finish(self, execution: JobExecution, action: Finish) -> JobExecution:
        try:
            return self._db(
                lambda: self.repo.finish(
                    execution.id, action.status, action.description, action.exit_code
                )
            )
        except UnexpectedJobExecutionState:
            current = self._db(partial(self.repo.get_execution, execution.id))
            if current.status is action.status and self._db_retried(current, action):
                return current  # our own commit landed before its connection dropped
            raise _ended_elsewhere(current) from None

    @staticmethod
    def _db_retried(current: JobExecution, action: Finish) -> bool:
        return current.exit_description == action.description[:20000]


def _ended_elsewhere(execution: JobExecution) -> StepFenced:
    """Someone else ended the execution while this process ran it (``recover --force``,
    declared lost): this process is fenced (exit 8) and records nothing more."""
    return StepFenced(
        f"execution {execution.id} was ended by someone else while this process ran it "
        f"(recovered or declared lost): it is {execution.status.value}; "
        "nothing more was recorded"
    )
