"""One unit in flight on this machine: a ``baton step`` subprocess (what a pod runs),
or a thread running the same code when the executor runs in-process (tests)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

from baton.core.status import UnitKind
from baton.executors.logfiles import copy_output
from baton.repository import JobRepository
from baton.step.entry import unit_argv
from baton.step.runner import run_step

_PR_SET_PDEATHSIG = 1
COPY_DRAIN_SECONDS = 5.0  # a unit's grandchild may hold its output pipe: not forever


def _die_with_parent() -> None:
    """In the child: be killed when the executor dies, so ``kill -9`` of ``baton run``
    leaves no unit writing behind its back."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # pragma: no cover - not Linux
        pass


@dataclass(frozen=True)
class UnitKey:
    kind: UnitKind
    step: str
    partition: int | None = None

    def label(self) -> str:
        part = "" if self.partition is None else f"[{self.partition}]"
        return f"{self.step}{part}" + ("" if self.kind is UnitKind.STEP else f" ({self.kind})")


class Running:
    """A unit in flight: a subprocess, or a thread when running in-process."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes] | None = None,
        thread: threading.Thread | None = None,
        copier: threading.Thread | None = None,
    ):
        self.proc = proc
        self.thread = thread
        self.copier = copier  # copies the subprocess's output to its log file
        self.result: dict[str, Any] = {}

    def done(self) -> bool:
        if self.proc is not None:
            if self.proc.poll() is None:
                return False
            if self.copier is not None:  # its last lines reach the log first
                self.copier.join(timeout=COPY_DRAIN_SECONDS)
            return True
        assert self.thread is not None
        return not self.thread.is_alive()

    def exit_code(self) -> int:
        if self.proc is not None:
            return int(self.proc.returncode)
        if "error" in self.result:
            raise self.result["error"]
        return int(self.result.get("code", -1))

    def alive_process(self) -> subprocess.Popen[bytes] | None:
        """Its subprocess while that still runs (None for a thread or an ended process)."""
        return self.proc if self.proc is not None and self.proc.poll() is None else None


def spawn(
    db_url: str, execution_id: int, key: UnitKey, env: dict[str, str], log_fd: int | None = None
) -> Running:
    """Start the unit as ``python -m baton.step`` (`baton step` without the CLI's
    imports: what pods run), dying with this process; with ``log_fd``, its output is
    kept in that file too (:mod:`baton.executors.logfiles`)."""
    argv = unit_argv(execution_id, key.step, kind=key.kind, partition=key.partition)
    cmd = [sys.executable, "-m", "baton.step", *argv]
    full_env = dict(os.environ, BATON_DB_URL=db_url, **env)
    if log_fd is None:
        return Running(proc=subprocess.Popen(cmd, env=full_env, preexec_fn=_die_with_parent))
    full_env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        cmd,
        env=full_env,
        preexec_fn=_die_with_parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    return Running(proc=proc, copier=copy_output(proc.stdout, log_fd, None))


def thread(
    repo: JobRepository,
    execution_id: int,
    key: UnitKey,
    env: dict[str, str],
    stop: threading.Event,
) -> Running:
    """Run the unit in a thread of this process (``env`` set around it), its exit code
    or exception kept for the executor's thread."""
    running = Running()

    def target() -> None:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            running.result["code"] = run_step(
                repo, execution_id, key.step, key.partition, kind=key.kind, stop=stop
            )
        except BaseException as e:  # surfaced in the executor's thread
            running.result["error"] = e
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    running.thread = threading.Thread(target=target, name=key.label(), daemon=True)
    running.thread.start()
    return running
