"""The local executor: applies the flow engine's actions on this machine.

Each step runs as a subprocess running the same entrypoint a pod runs (``baton step``),
so a step that crashes, leaks or is killed cannot take the executor with it. The
subprocess dies with the executor (PR_SET_PDEATHSIG), so ``kill -9`` of ``baton run``
leaves no orphan writing behind its back; the execution is then recovered as FAILED
and restarts from its last checkpoint.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from baton.domain import BatchStatus
from baton.errors import BatonError
from baton.flow import Finish, RunStep, Wait, next_action
from baton.repository import JobExecution, JobRepository, StepExecution
from baton.spec import BatchJob
from baton.step.runner import run_step

log = logging.getLogger("baton.executor")

Tick = Callable[[JobExecution, list[StepExecution]], None]

_PR_SET_PDEATHSIG = 1


# ---------------------------------------------------------------- process identity


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_owner() -> str:
    """``host:pid:start`` of this process: enough to tell later whether it is gone."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}"


def owner_alive(owner: str | None) -> bool | None:
    """True/False when the owner ran on this host; None when it cannot be told here."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    current = _start_ticks(int(pid_text))
    return current is not None and (ticks in ("", "0") or current == ticks)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # pragma: no cover - not Linux
        pass


# ---------------------------------------------------------------- executor


class LocalExecutor:
    """Runs an execution to a terminal state, one step process at a time."""

    def __init__(
        self,
        repo: JobRepository,
        *,
        in_process: bool = False,
        on_tick: Tick | None = None,
        poll_seconds: float = 0.25,
    ):
        self.repo = repo
        self.in_process = in_process
        self.on_tick = on_tick
        self.poll = poll_seconds
        self._signalled = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._step_stop = threading.Event()

    def run(self, execution: JobExecution) -> JobExecution:
        execution = self.repo.transition(
            execution.id,
            BatchStatus.STARTED,
            allowed=(BatchStatus.STARTING,),
            action="start",
            start=True,
            owner=this_owner(),
        )
        job = BatchJob.model_validate(execution.job_spec)
        previous = {
            name: s.status
            for (name, part), s in self.repo.previous_steps(execution).items()
            if part is None
        }
        with self._signals():
            while True:
                execution = self._honour_signal(self.repo.get_execution(execution.id))
                steps = self.repo.step_executions(execution.id)
                current = {s.step_name: s.status for s in steps if s.partition is None}
                action = next_action(
                    job.spec,
                    current,
                    previous,
                    stopping=execution.status is BatchStatus.STOPPING,
                )
                if isinstance(action, Finish):
                    return self._finish(execution, action, steps)
                if isinstance(action, Wait):
                    # Only a dead step process leaves a step running between actions.
                    self._record_lost_step(execution, action.step, "its process died")
                    continue
                assert isinstance(action, RunStep)
                code = self._run_step(execution, action.step)
                self._record_lost_step(execution, action.step, f"its process exited with {code}")

    # ------------------------------------------------------------ steps

    def _run_step(self, execution: JobExecution, step: str) -> int:
        if self.in_process:
            return self._run_in_thread(execution, step)
        env = dict(os.environ, BATON_DB_URL=self.repo.url)
        cmd = [sys.executable, "-m", "baton", "step", str(execution.id), step]
        self._child = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)
        try:
            while True:
                try:
                    return self._child.wait(timeout=self.poll)
                except subprocess.TimeoutExpired:
                    self._tick(execution)
        finally:
            self._tick(execution)
            self._child = None

    def _run_in_thread(self, execution: JobExecution, step: str) -> int:
        result: dict[str, Any] = {}
        self._step_stop = threading.Event()
        if self._signalled.is_set():
            self._step_stop.set()

        def target() -> None:
            try:
                result["code"] = run_step(self.repo, execution.id, step, stop=self._step_stop)
            except BaseException as e:  # surfaced below, in the executor's thread
                result["error"] = e

        t = threading.Thread(target=target, name=f"step-{step}", daemon=True)
        t.start()
        while t.is_alive():
            t.join(self.poll)
            self._tick(execution)
        if "error" in result:
            raise result["error"]
        return int(result["code"])

    def _tick(self, execution: JobExecution) -> None:
        if self._signalled.is_set():
            self._honour_signal(self.repo.get_execution(execution.id))
        if self.on_tick is not None:
            with suppress(BatonError):  # a display glitch must not fail the job
                self.on_tick(execution, self.repo.step_executions(execution.id))

    def _record_lost_step(self, execution: JobExecution, step: str, why: str) -> None:
        """A step process that ended without recording an end (crash, kill, bad
        definition) is recorded FAILED, so the flow moves on instead of looping."""
        record = next(
            (
                s
                for s in self.repo.step_executions(execution.id)
                if s.step_name == step and s.partition is None
            ),
            None,
        )
        if record is not None and record.status.terminal:
            return
        if record is None:
            record = self.repo.open_step(execution, step, None, worker=None, fresh=False)
        self.repo.finish_step(
            record, BatchStatus.FAILED, exit_code="FAILED", description=f"step '{step}': {why}"
        )

    # ------------------------------------------------------------ stop & finish

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: Any) -> None:
            self._signalled.set()
            self._step_stop.set()
            if self._child is not None and signum == signal.SIGTERM:
                self._child.send_signal(signal.SIGTERM)

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def _honour_signal(self, execution: JobExecution) -> JobExecution:
        if self._signalled.is_set() and execution.status is BatchStatus.STARTED:
            log.warning("stop requested: finishing the current chunk")
            return self.repo.transition(
                execution.id,
                BatchStatus.STOPPING,
                allowed=(BatchStatus.STARTED,),
                action="stop",
            )
        return execution

    def _finish(
        self, execution: JobExecution, action: Finish, steps: list[StepExecution]
    ) -> JobExecution:
        description = action.description
        failed = [s for s in steps if s.status is BatchStatus.FAILED]
        if action.status is BatchStatus.FAILED and failed:
            first_line = failed[-1].exit_description.split("\n", 1)[0]
            description = f"{description}: {first_line}"
        return self.repo.transition(
            execution.id,
            action.status,
            allowed=(BatchStatus.STARTING, BatchStatus.STARTED, BatchStatus.STOPPING),
            action="finish",
            exit_code=action.status.value,
            description=description,
            end=True,
        )
