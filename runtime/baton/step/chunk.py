"""The chunk loop: read ``size`` items, process them, write them and checkpoint.

User code (reader, processor, and every writer that does not join the checkpoint
transaction) runs before that transaction begins, so it never holds the repository's
write lock. The transaction then holds only the SQL writer's rows (when its table is in
the repository's database), the checkpoint — whose UPDATE is the fence: it fails when
someone else ended this unit — and, after it, the staged bytes of the file writers,
appended and fsynced before the commit. A chunk whose transaction does not commit is
rolled back everywhere: staged writers forget it and truncate their files back to the
last committed offset, and the step context keeps its last committed cursors.

Fault tolerance follows Spring Batch: read and process errors of a skippable type are
skipped (up to ``skipLimit``); process and write errors of a retryable type are retried
(up to ``retryLimit``); a chunk whose write still fails with a skippable error is
scanned item by item (each under a savepoint) to skip just the bad items.

A connection error (a database failover) is not a chunk failure: the loop waits for
the database (up to ``BATON_DB_RETRY_SECONDS``), reads back under the unit's row lock
whether the chunk's commit landed, and either goes on after it or writes it again.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from baton.core.counts import Counts
from baton.core.entities import StepExecution
from baton.core.errors import BatonError, DatabaseUnavailable, StepFenced
from baton.core.status import BatchStatus
from baton.items.database import SqlReader
from baton.items.protocols import KnowsTotal
from baton.repository import JobRepository
from baton.repository.retry import (
    Retrier,
    UnitState,
    is_unavailable,
    locked_unit_state,
    retry_budget,
)
from baton.spec.model import ChunkSpec
from baton.step import events
from baton.step.components import (
    FaultPolicy,
    RetryInterrupted,
    build_processor,
    build_reader,
    build_writer,
)
from baton.step.context import StepContext
from baton.step.failures import error_text
from baton.step.outcome import CONTINUE, Outcome
from baton.step.reading import (
    Chunk,
    EstimatedTotal,
    counts_after,
    process_chunk,
    read_chunk,
)
from baton.step.scan import Skip, scan_bound, scan_unbound
from baton.step.writers import ChunkWriters

CHUNKS_KEY = "baton.chunks"
DURATION_WINDOW = 5
"""Chunk durations kept to predict the next one (the time budget): a bounded window."""

log = logging.getLogger("baton.step")


class _Redo(Exception):
    """The chunk's commit did not land (the database went away): write it again."""


Attempt = Callable[[], tuple[BatchStatus, Counts]]


class ChunkStep:
    """One execution of a chunk-oriented step."""

    def __init__(
        self,
        repo: JobRepository,
        step: StepExecution,
        spec: ChunkSpec,
        ctx: StepContext,
        *,
        max_duration: float | None = None,
    ):
        self.max_duration = max_duration
        self.repo = repo
        self.step = step
        self.spec = spec
        self.ctx = ctx
        self.policy = FaultPolicy(spec, ctx.pause)
        self.reader = build_reader(spec, ctx)
        self.process = build_processor(spec, ctx)
        self.writer = build_writer(spec, ctx)
        self.writers = ChunkWriters(self.writer)
        self.counts = Counts.of(step)  # a resumed incarnation continues its counts
        self.durations: deque[float] = deque(maxlen=DURATION_WINDOW)
        self.totals = EstimatedTotal(self.reader, self.counts)
        self._db_deadline: float | None = None  # when riding out an outage gives up
        self._what = f"step '{step.step_name}'" + (
            "" if step.partition is None else f" partition {step.partition}"
        )

    def run(self) -> Outcome:
        streams = [s for s in (self.reader, *self.writers.leaves) if hasattr(s, "open")]
        outcome: Outcome | None = None
        try:
            retry = Retrier(self._what)
            for s in streams:  # a SQL reader/writer reads its table at open: ride out a restart
                retry(partial(s.open, self.ctx.step_context))
            retry(lambda: self.writers.find_bound(self.repo.engine))
            if isinstance(self.reader, KnowsTotal) and not self.totals.estimates:
                total = self.reader.total()
                if total is not None:
                    retry(lambda: self.repo.set_total(self.step.id, total + self.counts.read))
                    events.emit("total", total=total + self.counts.read)
            outcome = self._loop()
            return outcome
        finally:
            self._close(outcome is not None)

    def _close(self, succeeded: bool) -> None:
        """Close every reader and writer; after a success a failing close fails the step
        (the data may not be complete), after a failure it must not hide the cause."""
        errors: list[tuple[Any, Exception]] = []
        for s in reversed([self.reader, *self.writers.leaves]):
            if hasattr(s, "close"):
                try:
                    s.close()
                except Exception as e:
                    errors.append((s, e))
        if not errors:
            return
        if not succeeded:
            for stream, error in errors:
                log.warning("closing %s also failed: %s", type(stream).__name__, error_text(error))
            return
        stream, error = errors[0]
        raise BatonError(f"closing {type(stream).__name__} failed: {error_text(error)}") from error

    def _loop(self) -> Outcome:
        self.ctx.chunk_number = int(self.ctx.step_context.get(CHUNKS_KEY, 0))
        try:
            return self._chunks(time.monotonic())
        finally:
            self.ctx.in_chunk = False

    def _chunks(self, started: float) -> Outcome:
        while True:
            self.ctx.in_chunk = False
            if self.ctx.stop_requested:
                return self._signalled()
            if self._budget_spent(started):
                return Outcome(
                    BatchStatus.STOPPED,
                    self.counts,
                    f"time budget of {self.max_duration:g}s reached; continuing in a new "
                    "incarnation",
                    exit_code=CONTINUE,
                )
            chunk_start = time.monotonic()
            self.ctx.in_chunk = True
            chunk = self._read_chunk()
            if not chunk.items and not chunk.skips and chunk.end:
                return Outcome(BatchStatus.COMPLETED, self.counts)
            try:
                outputs = process_chunk(self.process, chunk, self.policy, self.counts.skip)
                job_status = self._write_chunk(outputs, chunk)
            except RetryInterrupted:  # nothing of this chunk committed: a boundary
                return self._signalled()
            self.durations.append(time.monotonic() - chunk_start)
            if (total := self.totals.after_chunk(chunk.end)) is not None:
                Retrier(self._what)(partial(self.repo.set_total, self.step.id, total))
            if chunk.end:
                return Outcome(BatchStatus.COMPLETED, self.counts)
            if job_status is BatchStatus.STOPPING:
                return Outcome(BatchStatus.STOPPED, self.counts, "stopped on request")

    def _signalled(self) -> Outcome:
        """SIGTERM/SIGINT at a chunk boundary. In a pod (BATON_EXECUTOR=kubernetes) it
        means the pod is going away, not "stop the job" (only a STOPPING job, seen at
        the checkpoint, stops): continue from this checkpoint in a new pod."""
        if os.environ.get("BATON_EXECUTOR") == "kubernetes":
            return Outcome(
                BatchStatus.STOPPED,
                self.counts,
                "pod terminated (signal); continuing in a new pod",
                exit_code=CONTINUE,
            )
        return Outcome(BatchStatus.STOPPED, self.counts, "stopped on signal")

    def _budget_spent(self, started: float) -> bool:
        """Would the next chunk overrun the time budget? Predicted from the recent chunks
        of this incarnation (at least one chunk always runs, so work progresses)."""
        if not self.max_duration or not self.durations:
            return False
        recent = self.durations
        predicted = max(sum(recent) / len(recent), recent[-1])
        return bool(time.monotonic() - started + predicted > self.max_duration)

    # ------------------------------------------------------------ read / process

    def _read_chunk(self) -> Chunk:
        return read_chunk(self._read, self.spec.size, self.policy, self.counts.skip)

    def _read(self) -> Any:
        """The next item. The SQL reader's page query rides out a failover (its cursor
        moves only once a page was fetched, so reading again is safe)."""
        if isinstance(self.reader, SqlReader):
            return Retrier(self._what)(self.reader.read)
        return self.reader.read()

    # ------------------------------------------------------------ write + checkpoint

    def _write_chunk(self, outputs: list[Any], chunk: Chunk) -> BatchStatus:
        attempt = 0
        while True:
            counts = counts_after(self.counts, chunk, outputs, len(outputs))
            try:
                return self._settled(partial(self._commit, outputs, counts, chunk.skips))
            except _Redo:
                continue
            except (DatabaseUnavailable, StepFenced):
                raise
            except Exception as e:
                self._rolled_back()
                if self.policy.can_retry(e, attempt):
                    attempt += 1
                    self.policy.before_retry(e, attempt)  # chunk rolled back: may stop
                    continue
                if isinstance(e, self.policy.skippable) and outputs:
                    return self._scan(outputs, chunk)
                raise

    def _rolled_back(self) -> None:
        self.counts = replace(self.counts, rollback=self.counts.rollback + 1)

    def _commit(
        self, outputs: list[Any], counts: Counts, skips: list[Skip]
    ) -> tuple[BatchStatus, Counts]:
        self.writers.write_unbound(outputs)
        context = self.ctx.step_context
        self._update_streams(context)
        with self.repo.write() as conn:
            self.writers.write_bound(conn, outputs)
            status = self.repo.checkpoint(conn, self.step, counts, context, skips)
            self.writers.flush_staged()
            return status, counts

    def _settled(self, attempt: Attempt) -> BatchStatus:
        """Run one attempt at committing a chunk and settle its outcome everywhere: on
        success the staged writers commit; on failure the step context gets its last
        committed cursors back, and the staged writers roll back — under the unit's row
        lock when they may have appended bytes or the commit's fate is unknown."""
        context = self.ctx.step_context
        before = dict(context)
        try:
            status, counts = attempt()
        except Exception as e:
            context.clear()
            context.update(before)
            if isinstance(e, StepFenced):
                raise  # someone else owns the files now: touch nothing
            if not (is_unavailable(e) or self.writers.flushed):
                self.writers.rollback_staged()  # nothing appended: forgetting is enough
                raise
            landed = self._settle()
            if landed is not None:
                return landed
            if is_unavailable(e):
                self._rolled_back()
                raise _Redo from None
            raise
        self.writers.commit_staged()
        self.writers.flushed = False
        self._committed(counts)
        return status

    def _committed(self, counts: Counts) -> None:
        """A chunk's commit landed (written here, or adopted by :meth:`_settle`)."""
        self._db_deadline = None
        self.counts = counts
        self.ctx.chunk_number += 1
        events.counts(counts.columns())

    def _settle(self) -> BatchStatus | None:
        """After a failed or unknown commit, wait for the database (within the budget)
        and read, under the unit's row lock, whether the chunk's commit landed: if it
        did, adopt it (its job status is returned); if not, roll the staged writers back
        (None). A unit someone else ended is fenced: its files are left alone."""
        if self._db_deadline is None:
            self._db_deadline = time.monotonic() + retry_budget()
        budget = max(self._db_deadline - time.monotonic(), 0.0)
        state, landed = Retrier(self._what, budget=budget)(
            partial(self._settle_locked, self.counts.commit + 1)
        )
        self.writers.flushed = False
        if not landed:
            return None
        self.ctx.step_context.clear()
        self.ctx.step_context.update(state.context)
        self._committed(state.counts)
        return state.job_status

    def _settle_locked(self, target: int) -> tuple[UnitState, bool]:
        """Under the unit's row lock: did commit number ``target`` land? The staged
        writers commit or roll back accordingly, in that same transaction."""
        with self.repo.write() as conn:
            state = locked_unit_state(conn, self.step.id)
            if (
                state.status is not BatchStatus.STARTED
                or state.incarnations != self.step.incarnations
            ):
                raise StepFenced(
                    f"step execution {self.step.id} ('{self.step.step_name}') was ended "
                    "by someone else or taken over by another process (declared lost, "
                    "recovered, or resumed elsewhere); this process stops without "
                    "committing"
                )
            landed = state.commit_count >= target
            if landed:
                self.writers.commit_staged()
            else:
                self.writers.rollback_staged()
            return state, landed

    def _scan(self, outputs: list[Any], chunk: Chunk) -> BatchStatus:
        """Write item by item to find the bad ones: the writers outside the transaction
        first, then the transactional ones each under a savepoint; skip the items any
        writer refuses, and commit the rest (staged writers re-stage just those)."""
        while True:
            skips = list(chunk.skips)
            try:
                good = scan_unbound(self.writers, outputs, skips, self._may_skip(skips))
            except Exception:
                self.writers.rollback_staged()
                raise
            try:
                return self._settled(partial(self._scan_commit, outputs, chunk, good, skips))
            except _Redo:
                continue

    def _may_skip(self, skips: list[Skip]) -> Callable[[BaseException], bool]:
        return lambda e: self.policy.can_skip(e, self.counts.skip + len(skips))

    def _scan_commit(
        self, outputs: list[Any], chunk: Chunk, good: list[Any], skips: list[Skip]
    ) -> tuple[BatchStatus, Counts]:
        context = self.ctx.step_context
        with self.repo.write() as conn:
            if self.writers.bound:
                good = scan_bound(conn, self.writers, good, skips, self._may_skip(skips))
            self.writers.restage(good)  # just what every writer accepted
            counts = counts_after(self.counts, chunk, outputs, len(good))
            self._update_streams(context)
            status = self.repo.checkpoint(conn, self.step, counts, context, skips)
            self.writers.flush_staged()
            return status, counts

    def _update_streams(self, context: dict[str, Any]) -> None:
        for s in (self.reader, *self.writers.leaves):
            if hasattr(s, "update"):
                s.update(context)
        context[CHUNKS_KEY] = self.ctx.chunk_number + 1
