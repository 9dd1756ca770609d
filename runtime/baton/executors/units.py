"""One unit in flight on this machine: a ``baton step`` subprocess (what a pod runs),
or a thread running the same code when the executor runs in-process (tests).

A subprocess is watched through descriptors, never polled: its pidfd (readable when
it exits), the read end of its events pipe (:mod:`baton.step.events`: progress as
JSON lines) and, when its output is kept, the read end of its output pipe, which the
executor's loop copies to the log file (:mod:`baton.executors.logfiles`).
"""

from __future__ import annotations

import codecs
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baton.core.status import UnitKind
from baton.executors.logfiles import write_all
from baton.repository import JobRepository
from baton.step.events import EVENTS_FD_ENV
from baton.step.runner import run_step

_PR_SET_PDEATHSIG = 1
COPY_DRAIN_SECONDS = 5.0  # a unit's grandchild may hold its output pipe: not forever
READ_SIZE = 65536


def die_with_parent() -> None:
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


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+); None
    elsewhere (the executor then looks again at a short interval)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # pragma: no cover - old kernel or not Linux
        return None


class Running:
    """A unit in flight: a subprocess, or a thread when running in-process."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes] | None = None,
        thread: threading.Thread | None = None,
        *,
        events_fd: int | None = None,
        log_fd: int | None = None,
    ):
        self.proc = proc
        self.thread = thread
        self.result: dict[str, Any] = {}
        self.step_id: int | None = None  # from its "open" event
        self.pidfd = _pidfd(proc.pid) if proc is not None else None
        self.events_fd = events_fd
        self.out_fd = proc.stdout.fileno() if proc is not None and proc.stdout else None
        self.log_fd = log_fd
        self._partial = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for fd in (events_fd, self.out_fd):
            if fd is not None:
                os.set_blocking(fd, False)

    def watched(self) -> list[int]:
        """The descriptors to wait on: exit, events, output."""
        return [fd for fd in (self.pidfd, self.events_fd, self.out_fd) if fd is not None]

    def events(self) -> list[dict[str, Any]]:
        """The complete event lines that have arrived (a torn or bad line is dropped)."""
        if self.events_fd is None:
            return []
        data = _read_available(self.events_fd)
        if data is None:  # the unit closed its end
            os.close(self.events_fd)
            self.events_fd = None
            data = b""
        *lines, self._partial = (self._partial + data).split(b"\n")
        out = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def copy_output(self, echo: Callable[[str], object] | None = None) -> None:
        """Copy what the unit printed to its log file and the executor's stderr."""
        if self.out_fd is None:
            return
        data = _read_available(self.out_fd)
        if data is None:
            self._close_output()
            return
        if self.log_fd is not None:
            write_all(self.log_fd, data)
        text = self._decoder.decode(data)
        (echo or sys.stderr.write)(text)

    def _close_output(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.out_fd = None
        if self.log_fd is not None:
            os.close(self.log_fd)
            self.log_fd = None

    def done(self) -> bool:
        if self.proc is not None:
            if self.proc.poll() is None:
                return False
            self._drain()
            return True
        assert self.thread is not None
        return "ended" in self.result  # set before it wakes the executor

    def _drain(self) -> None:
        """After the exit: its last output reaches the log file (a grandchild holding
        the pipe gets COPY_DRAIN_SECONDS), and the descriptors are closed."""
        end = time.monotonic() + COPY_DRAIN_SECONDS
        while self.out_fd is not None and (left := end - time.monotonic()) > 0:
            if select.select([self.out_fd], [], [], left)[0]:
                self.copy_output()
        if self.out_fd is not None:
            self._close_output()
        for fd in (self.pidfd, self.events_fd):
            if fd is not None:
                os.close(fd)
        self.pidfd = self.events_fd = None

    def exit_code(self) -> int:
        if self.proc is not None:
            return int(self.proc.returncode)
        if "error" in self.result:
            raise self.result["error"]
        return int(self.result.get("code", -1))

    def alive_process(self) -> subprocess.Popen[bytes] | None:
        """Its subprocess while that still runs (None for a thread or an ended process)."""
        return self.proc if self.proc is not None and self.proc.poll() is None else None


def _read_available(fd: int) -> bytes | None:
    """What can be read from a non-blocking descriptor now; None at end of file."""
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            break
        if not data:
            if chunks:
                break
            return None
        chunks.append(data)
        if len(data) < READ_SIZE:
            break
    return b"".join(chunks)


def spawn(db_url: str, argv: list[str], env: dict[str, str], log_fd: int | None = None) -> Running:
    """Start the unit (``argv``: :func:`baton.step.entry.unit_argv`) as ``python -m
    baton.step`` (`baton step` without the CLI's imports: what pods run), dying with
    this process, with an events pipe; with ``log_fd``, its output is kept in that file
    too (:mod:`baton.executors.logfiles`)."""
    cmd = [sys.executable, "-m", "baton.step", *argv]
    events_r, events_w = os.pipe()
    full_env = dict(os.environ, BATON_DB_URL=db_url, **env)
    full_env[EVENTS_FD_ENV] = str(events_w)
    output: dict[str, Any] = {}
    if log_fd is not None:
        full_env["PYTHONUNBUFFERED"] = "1"
        output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    try:
        proc = subprocess.Popen(
            cmd, env=full_env, preexec_fn=die_with_parent, pass_fds=(events_w,), **output
        )
    except BaseException:
        os.close(events_r)
        raise
    finally:
        os.close(events_w)
    return Running(proc=proc, events_fd=events_r, log_fd=log_fd)


def thread(
    repo: JobRepository,
    execution_id: int,
    key: UnitKey,
    env: dict[str, str],
    stop: threading.Event,
    ended: Callable[[], None],
) -> Running:
    """Run the unit in a thread of this process (``env`` set around it), its exit code
    or exception kept for the executor's thread, which ``ended()`` wakes."""
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
            running.result["ended"] = True
            ended()

    running.thread = threading.Thread(target=target, name=key.label(), daemon=True)
    running.thread.start()
    return running
