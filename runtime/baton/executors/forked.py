"""Units as forks of the executor: the same ``baton step`` entry, without a new Python.

A unit process started with ``python -m baton.step`` pays the interpreter's start and
the step runtime's imports (SQLAlchemy, pydantic, the spec models) before its first
query: most of a short run's fixed cost. The executor has all of that loaded, so it
forks instead: the child is a separate process as before (a crash, a leak or
``kill -9`` of it cannot take the executor along; it dies with the executor through
PR_SET_PDEATHSIG), runs :func:`baton.step.entry.main` on the unit's arguments, and
exits with its code. Forking is safe only from a single-threaded process, so it is
used only then (``baton run``: the progress display refreshes from the executor's
thread); otherwise, and with ``BATON_UNIT_PROCESS=exec``, units are started with
``python -m baton.step`` as pods are (:func:`baton.executors.units.spawn`).
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable
from typing import IO, Any

from baton.executors.units import Running, die_with_parent
from baton.step import entry
from baton.step.events import EVENTS_FD_ENV

UNIT_PROCESS_ENV = "BATON_UNIT_PROCESS"


def can_fork() -> bool:
    """Fork only where that is safe: one thread, POSIX, not switched off."""
    return (
        hasattr(os, "fork")
        and os.environ.get(UNIT_PROCESS_ENV, "fork") != "exec"
        and threading.active_count() == 1
    )


class ForkedProcess:
    """The parts of ``subprocess.Popen`` the executor uses, for a forked child."""

    def __init__(self, pid: int, stdout: IO[bytes] | None):
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork(
    db_url: str,
    argv: list[str],
    env: dict[str, str],
    log_fd: int | None,
    inherited: Iterable[int],
) -> Running:
    """Fork the unit: ``argv`` for ``baton step``; ``inherited``: the executor's
    descriptors the child closes (other units' pipes, the executor's wake-up pipe)."""
    events_r, events_w = os.pipe()
    out_r, out_w = os.pipe() if log_fd is not None else (None, None)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered is written twice
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child (covered by the CLI tests)
        _child(db_url, argv, env, events_w, out_w, [events_r, out_r, log_fd, *inherited], parent)
    os.close(events_w)
    stdout = None
    if out_w is not None and out_r is not None:
        os.close(out_w)
        stdout = os.fdopen(out_r, "rb", buffering=0)
    proc: Any = ForkedProcess(pid, stdout)
    return Running(proc=proc, events_fd=events_r, log_fd=log_fd)


def _child(
    db_url: str,
    argv: list[str],
    env: dict[str, str],
    events_w: int,
    out_w: int | None,
    close: list[int | None],
    parent: int,
) -> None:  # pragma: no cover - runs in the child
    code = 1
    try:
        gc.freeze()  # the executor's objects are never finalized here (its connections)
        die_with_parent()
        if os.getppid() != parent:  # the executor died before that took effect
            os._exit(code)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a new process, until
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the unit sets its own
        for fd in close:
            if fd is not None:
                os.close(fd)
        if out_w is not None:
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.close(out_w)
        _unbuffered_streams()
        _forget_user_modules()
        os.environ.update(env, BATON_DB_URL=db_url, **{EVENTS_FD_ENV: str(events_w)})
        code = entry.main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _forget_user_modules() -> None:  # pragma: no cover - runs in the child
    """Drop the modules of the user's code that the executor imported (the launch
    loads a job's components to check them): the unit imports them again, as a pod's
    fresh process does, so their import-time code runs in the unit too (a module that
    fails there fails the step, not the launch). Kept: the standard library, installed
    packages and Baton itself."""
    import sysconfig

    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.add(os.path.realpath(os.path.dirname(os.path.dirname(entry.__file__))))  # baton/
    kept = tuple(os.path.join(r, "") for r in roots)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name != "__main__" and file and not os.path.realpath(file).startswith(kept):
            del sys.modules[name]


def _unbuffered_streams() -> None:  # pragma: no cover - runs in the child
    """Fresh unbuffered stdout/stderr on descriptors 1 and 2 (what PYTHONUNBUFFERED
    gives a spawned unit: a line printed is in the log even if the unit is killed);
    the log handlers that wrote to the old ones write to the new ones."""
    old = {id(sys.stdout): 1, id(sys.stderr): 2}
    made = {
        fd: io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding="utf-8",
            errors="replace",
            write_through=True,
        )
        for fd in (1, 2)
    }
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(handler, logging.StreamHandler) and id(stream) in old:
            handler.stream = made[old[id(stream)]]
    sys.stdout, sys.stderr = made[1], made[2]
