"""A schedule run on this machine (``baton schedule run``, ``baton backfill FILE``):
the engine of :mod:`baton.schedule` applied with the local executor.

Each tick asks the repository once about the tick's windows, plans, and applies: a
Launch launches the window's instance (its window parameter set) and runs it on a
thread, a Restart relaunches the window's FAILED instance from its checkpoints, a Stop
asks the running window to stop at a chunk boundary. The window is identifying, so the
restart rules make each window one instance: a second scheduler, or this one after a
restart, finds a COMPLETED window complete and leaves it alone."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from baton.core.entities import JobExecution
from baton.core.errors import LaunchRejected, UnexpectedJobExecutionState
from baton.launch.operator import JobOperator
from baton.registry.jobs import RegisteredJob
from baton.repository.windows import window_records
from baton.schedule.keys import (
    BackfillProgress,
    WindowRecord,
    backfill_plan,
    backfill_windows,
    candidates,
    newest_known,
    tick_of,
    window_key,
    window_kind,
)
from baton.schedule.model import ScheduleSpec
from baton.schedule.windows import (
    RESTART_HORIZON_SECONDS,
    Action,
    Launch,
    Missed,
    Restart,
    Stop,
    Tick,
    WindowStatus,
    plan,
)

log = logging.getLogger("baton.schedule")

Clock = Callable[[], dt.datetime]
Report = Callable[[str], None]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class WindowRun:
    """A window's execution running on a thread of this scheduler."""

    key: str
    execution: JobExecution
    thread: threading.Thread
    final: list[JobExecution] = field(default_factory=list)


class LocalScheduler:
    """One schedule of one job, ticked by the caller (or :meth:`serve`)."""

    def __init__(
        self,
        operator: JobOperator,
        job: RegisteredJob,
        spec: ScheduleSpec,
        *,
        clock: Clock = utcnow,
        report: Report = log.info,
    ) -> None:
        self.op = operator
        self.job = job
        self.spec = spec
        self.engine = spec.engine()
        self.kind = window_kind(job.job.spec, spec.window_parameter)
        self.zone = self.engine.zone()
        self.clock = clock
        self.report = report
        self.since: dt.datetime | None = None
        self.running: dict[str, WindowRun] = {}
        self.finished: list[JobExecution] = []
        self.progress: BackfillProgress | None = None  # of the last backfill round

    # ------------------------------------------------------------ observing

    def observe(
        self, found: list[dt.datetime]
    ) -> tuple[dict[dt.datetime, str], Tick, dict[str, WindowRecord]]:
        """(window → key, the engine's view, key → record): one repository query; a
        window still running on one of this scheduler's threads counts as RUNNING."""
        now = self.clock()
        keys = {w: window_key(self.kind, w, self.zone) for w in found}
        records = window_records(
            self.op.repository, "", self.job.name, self.spec.window_parameter, set(keys.values())
        )
        overrides = dict.fromkeys(self.running, WindowStatus.RUNNING)
        tick = tick_of(self.since or now, now, keys, records, overrides)
        return keys, tick, records

    def reap(self) -> None:
        """Windows whose thread ended: their final execution, kept for the summary."""
        for key, run in list(self.running.items()):
            if not run.thread.is_alive():
                del self.running[key]
                self.finished.extend(run.final)

    # ------------------------------------------------------------ ticking

    def tick(self) -> list[Action]:
        """Plan and apply the due windows (the first tick starts from the newest window
        the repository knows among the last day's (at most 100), or now: a new schedule
        does not run its past)."""
        self.reap()
        now = self.clock()
        start = self.since or now - dt.timedelta(seconds=RESTART_HORIZON_SECONDS)
        keys, tick, records = self.observe(candidates(self.engine, start, now))
        if self.since is None:
            self.since = newest_known(tick) or now
            tick = replace(tick, since=self.since)
        decided = plan(self.engine, tick)
        for action in decided.actions:
            self._apply(action, keys[action.window], records)
        self.since = decided.since
        return decided.actions

    def _apply(self, action: Action, key: str, records: Mapping[str, WindowRecord]) -> None:
        record = records.get(key)
        if isinstance(action, Missed):
            self.report(f"window {key} missed (past startingDeadlineSeconds)")
        elif isinstance(action, Stop):
            self.stop_window(key, record)
        elif isinstance(action, Restart) and record is not None:
            self._start(key, lambda: self.op.relaunch(record.execution_id), "restarted")
        elif isinstance(action, Launch):
            self._start(key, lambda: self._launch(key), "launched")

    def _launch(self, key: str) -> JobExecution:
        params = {**self.spec.parameters, self.spec.window_parameter: key}
        return self.op.launch(self.job, params, context=self.spec.context)

    def _start(self, key: str, launch: Callable[[], JobExecution], what: str) -> None:
        if key in self.running:
            return  # two windows with one key (a date parameter): one instance
        try:
            execution = launch()
        except LaunchRejected as e:  # another scheduler got there first
            self.report(f"window {key}: {e}")
            return
        self.report(f"window {key} {what}: execution {execution.id}")
        final: list[JobExecution] = []
        thread = threading.Thread(
            target=lambda: final.append(self.op.run(execution)),
            name=f"baton-window-{key}",
            daemon=True,
        )
        self.running[key] = WindowRun(key, execution, thread, final)
        thread.start()

    def stop_window(self, key: str, record: WindowRecord | None = None) -> None:
        """Ask the window's execution to stop at its next chunk boundary."""
        run = self.running.get(key)
        target = run.execution.id if run else record.execution_id if record else None
        if target is None:
            return
        try:
            self.op.stop(target)
            self.report(f"window {key} stopping: execution {target}")
        except UnexpectedJobExecutionState:
            pass  # it ended meanwhile

    def stop_all(self) -> None:
        for key in list(self.running):
            self.stop_window(key)

    def wait(self, timeout: float | None = None) -> None:
        """Until every window this scheduler runs has ended."""
        for run in list(self.running.values()):
            run.thread.join(timeout)
        self.reap()

    # ------------------------------------------------------------ backfill

    def backfill(self, start: dt.datetime, end: dt.datetime, max_running: int) -> bool:
        """One round of a backfill of the windows in ``[start, end]``: launch or restart
        what may run now. True when every window has its final word."""
        self.reap()
        found = backfill_windows(self.engine, start, end)
        keys, tick, records = self.observe(found)
        launch, restart, progress = backfill_plan(
            found,
            tick.known,
            tick.restarts or {},
            max_running=max_running,
            max_restarts=self.engine.max_window_restarts,
        )
        for w in restart:
            self._apply(Restart(w), keys[w], records)
        for w in launch:
            self._apply(Launch(w), keys[w], records)
        self.progress = progress
        return progress.done and not self.running
