"""SIGTERM/SIGINT in a step process: stop at the next chunk boundary, not mid-chunk."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from baton.core.status import ExitCode

log = logging.getLogger("baton.step")


@contextmanager
def handling_stop_signals(handler: Any) -> Iterator[None]:
    """``handler`` for SIGTERM and SIGINT while the block runs, the previous ones after
    (main thread only: the executor and the step process share this)."""
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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

    try:
        with handling_stop_signals(handler):
            yield
    finally:
        for t in timers:
            t.cancel()
