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
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from baton.core.errors import BatonError, DatabaseUnavailable, StepFenced
from baton.core.status import BatchStatus
from baton.items.database import SqlReader
from baton.items.protocols import KnowsTotal, StagedWriter, TransactionalWriter
from baton.items.support import leaf_writers
from baton.loading import build, resolve_exception
from baton.repository import Counts, JobRepository, StepExecution
from baton.repository.retry import (
    Retrier,
    UnitState,
    is_unavailable,
    locked_unit_state,
    retry_budget,
)
from baton.spec.model import ChunkSpec
from baton.step.context import StepContext

CHUNKS_KEY = "baton.chunks"
CONTINUE = "CONTINUE"
DURATION_WINDOW = 5
"""Chunk durations kept to predict the next one (the time budget): a bounded window."""

log = logging.getLogger("baton.step")


class _Redo(Exception):
    """The chunk's commit did not land (the database went away): write it again."""


class SkipLimitExceeded(BatonError):
    """More items failed with skippable errors than ``skipLimit`` allows."""


@dataclass
class ChunkOutcome:
    status: BatchStatus
    counts: Counts
    description: str = ""
    exit_code: str | None = None


@dataclass
class _Chunk:
    items: list[Any] = field(default_factory=list)
    skips: list[tuple[str, Any, str]] = field(default_factory=list)
    end: bool = False


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


class _Policy:
    def __init__(self, spec: ChunkSpec):
        self.skip_limit = spec.skip_limit
        self.retry_limit = spec.retry_limit
        self.skippable = tuple(resolve_exception(n) for n in spec.skip)
        self.retryable = tuple(resolve_exception(n) for n in spec.retry)

    def can_skip(self, e: BaseException, skipped: int) -> bool:
        """Whether to skip after ``skipped`` earlier skips; past the limit, fail the step."""
        if not isinstance(e, self.skippable) or isinstance(e, DatabaseUnavailable):
            return False
        if skipped >= self.skip_limit:
            raise SkipLimitExceeded(
                f"skip limit {self.skip_limit} exceeded; last error: {error_text(e)}"
            ) from e
        return True

    def can_retry(self, e: BaseException, attempt: int) -> bool:
        return isinstance(e, self.retryable) and attempt < self.retry_limit


def _processor(obj: Any) -> Callable[[Any], Any]:
    if hasattr(obj, "process"):
        return obj.process  # type: ignore[no-any-return]
    if callable(obj):
        return obj  # type: ignore[no-any-return]
    raise BatonError(f"processor {obj!r} is neither callable nor has process()")


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
        self.policy = _Policy(spec)
        offered = ctx.offered()
        self.reader = _reader(build(spec.reader, offered, spec.reader_args), spec.reader)
        self.process = (
            _processor(build(spec.processor, offered, spec.processor_args))
            if spec.processor
            else None
        )
        self.writer = build(spec.writer, offered, spec.writer_args)
        if not hasattr(self.writer, "write"):
            raise BatonError(f"writer {spec.writer} has no write(items) method")
        self.writers = leaf_writers(self.writer)  # a composite's delegates, each on its own
        self.staged: list[Any] = [w for w in self.writers if isinstance(w, StagedWriter)]
        self.bound: list[Any] = []  # decided in run(): writers in the checkpoint transaction
        self.unbound: list[Any] = list(self.writers)
        self.counts = Counts.of(step)  # a resumed incarnation continues its counts
        self.durations: deque[float] = deque(maxlen=DURATION_WINDOW)
        self._flushed = False  # staged bytes appended in a transaction not yet settled
        self._db_deadline: float | None = None  # when riding out an outage gives up
        self._what = f"step '{step.step_name}'" + (
            "" if step.partition is None else f" partition {step.partition}"
        )

    def run(self) -> ChunkOutcome:
        streams = [s for s in (self.reader, *self.writers) if hasattr(s, "open")]
        opened: list[Any] = []
        outcome: ChunkOutcome | None = None
        try:
            for s in streams:
                s.open(self.ctx.step_context)
                opened.append(s)
            retry = Retrier(self._what)
            retry(self._find_bound_writers)
            if isinstance(self.reader, KnowsTotal):
                total = self.reader.total()
                if total is not None:
                    retry(lambda: self.repo.set_total(self.step.id, total + self.counts.read))
            outcome = self._loop()
            return outcome
        finally:
            self._close(outcome is not None)

    def _close(self, succeeded: bool) -> None:
        """Close every reader and writer; after a success a failing close fails the step
        (the data may not be complete), after a failure it must not hide the cause."""
        errors: list[tuple[Any, Exception]] = []
        for s in reversed([self.reader, *self.writers]):
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

    def _find_bound_writers(self) -> None:
        """Which writers write into the checkpoint transaction (the SQL writer on the
        repository's database): asked once, on a connection that takes no lock."""
        candidates = [w for w in self.writers if isinstance(w, TransactionalWriter)]
        bound = []
        if candidates:
            with self.repo.engine.connect() as conn:
                for w in candidates:
                    try:
                        if w.bind_transaction(conn):
                            bound.append(w)
                    finally:
                        w.bind_transaction(None)
        self.bound = bound
        self.unbound = [w for w in self.writers if not any(w is b for b in bound)]

    def _loop(self) -> ChunkOutcome:
        self.ctx.chunk_number = int(self.ctx.step_context.get(CHUNKS_KEY, 0))
        started = time.monotonic()
        while True:
            if self.ctx.stop_requested:
                return self._signalled()
            if self._budget_spent(started):
                return ChunkOutcome(
                    BatchStatus.STOPPED,
                    self.counts,
                    f"time budget of {self.max_duration:g}s reached; continuing in a new "
                    "incarnation",
                    exit_code=CONTINUE,
                )
            chunk_start = time.monotonic()
            chunk = self._read_chunk()
            if not chunk.items and not chunk.skips and chunk.end:
                return ChunkOutcome(BatchStatus.COMPLETED, self.counts)
            outputs = self._process_chunk(chunk)
            job_status = self._write_chunk(outputs, chunk)
            self.durations.append(time.monotonic() - chunk_start)
            if chunk.end:
                return ChunkOutcome(BatchStatus.COMPLETED, self.counts)
            if job_status is BatchStatus.STOPPING:
                return ChunkOutcome(BatchStatus.STOPPED, self.counts, "stopped on request")

    def _signalled(self) -> ChunkOutcome:
        """SIGTERM/SIGINT at a chunk boundary. In a pod (BATON_EXECUTOR=kubernetes) it
        means the pod is going away, not "stop the job" (only a STOPPING job, seen at
        the checkpoint, stops): continue from this checkpoint in a new pod."""
        if os.environ.get("BATON_EXECUTOR") == "kubernetes":
            return ChunkOutcome(
                BatchStatus.STOPPED,
                self.counts,
                "pod terminated (signal); continuing in a new pod",
                exit_code=CONTINUE,
            )
        return ChunkOutcome(BatchStatus.STOPPED, self.counts, "stopped on signal")

    def _budget_spent(self, started: float) -> bool:
        """Would the next chunk overrun the time budget? Predicted from the recent chunks
        of this incarnation (at least one chunk always runs, so work progresses)."""
        if not self.max_duration or not self.durations:
            return False
        recent = self.durations
        predicted = max(sum(recent) / len(recent), recent[-1])
        return bool(time.monotonic() - started + predicted > self.max_duration)

    # ------------------------------------------------------------ read / process

    def _read_chunk(self) -> _Chunk:
        chunk = _Chunk()
        while len(chunk.items) < self.spec.size:
            try:
                item = self._read()
            except Exception as e:
                if self.policy.can_skip(e, self.counts.skip + len(chunk.skips)):
                    chunk.skips.append(("read", None, error_text(e)))
                    continue
                raise
            if item is None:
                chunk.end = True
                break
            chunk.items.append(item)
        return chunk

    def _read(self) -> Any:
        """The next item. The SQL reader's page query rides out a failover (its cursor
        moves only once a page was fetched, so reading again is safe)."""
        if isinstance(self.reader, SqlReader):
            return Retrier(self._what)(self.reader.read)
        return self.reader.read()

    def _process_chunk(self, chunk: _Chunk) -> list[Any]:
        if self.process is None:
            return list(chunk.items)
        out: list[Any] = []
        for item in chunk.items:
            attempt = 0
            while True:
                try:
                    result = self.process(item)
                    break
                except Exception as e:
                    if self.policy.can_retry(e, attempt):
                        attempt += 1
                        continue
                    if self.policy.can_skip(e, self.counts.skip + len(chunk.skips)):
                        chunk.skips.append(("process", item, error_text(e)))
                        result = _SKIPPED
                        break
                    raise
            if result is not _SKIPPED and result is not None:
                out.append(result)
        return out

    # ------------------------------------------------------------ write + checkpoint

    def _counts(self, chunk: _Chunk, outputs: list[Any], written: int) -> Counts:
        read_skips = sum(1 for s in chunk.skips if s[0] == "read")
        process_skips = sum(1 for s in chunk.skips if s[0] == "process")
        return replace(
            self.counts,
            read=self.counts.read + len(chunk.items),
            filter=self.counts.filter + len(chunk.items) - len(outputs) - process_skips,
            read_skip=self.counts.read_skip + read_skips,
            process_skip=self.counts.process_skip + process_skips,
            write_skip=self.counts.write_skip + len(outputs) - written,
            write=self.counts.write + written,
            commit=self.counts.commit + 1,
        )

    def _write_chunk(self, outputs: list[Any], chunk: _Chunk) -> BatchStatus:
        attempt = 0
        while True:
            counts = self._counts(chunk, outputs, len(outputs))
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
                    continue
                if isinstance(e, self.policy.skippable) and outputs:
                    return self._scan(outputs, chunk)
                raise

    def _rolled_back(self) -> None:
        self.counts = replace(self.counts, rollback=self.counts.rollback + 1)

    def _commit(
        self, outputs: list[Any], counts: Counts, skips: list[tuple[str, Any, str]]
    ) -> tuple[BatchStatus, Counts]:
        if outputs:
            for w in self.unbound:  # user code and staging: before the transaction
                w.write(outputs)
        context = self.ctx.step_context
        self._update_streams(context)
        with self.repo.write() as conn:
            self._write_bound(conn, outputs)
            status = self.repo.checkpoint(conn, self.step, counts, context, skips)
            self._flush_staged()
            return status, counts

    def _write_bound(self, conn: Any, items: list[Any]) -> None:
        if not items or not self.bound:
            return
        for w in self.bound:
            w.bind_transaction(conn)
        try:
            for w in self.bound:
                w.write(items)
        finally:
            for w in self.bound:
                w.bind_transaction(None)

    def _flush_staged(self) -> None:
        """Inside the transaction, after the checkpoint's fence check: the file bytes."""
        if self.staged:
            self._flushed = True
            for w in self.staged:
                w.flush_staged()

    def _settled(self, attempt: Callable[[], tuple[BatchStatus, Counts]]) -> BatchStatus:
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
            if not (is_unavailable(e) or self._flushed):
                for w in self.staged:
                    w.rollback()  # nothing appended: forgetting the staged chunk is enough
                raise
            landed = self._settle()
            if landed is not None:
                return landed
            if is_unavailable(e):
                self._rolled_back()
                raise _Redo from None
            raise
        for w in self.staged:
            w.commit_staged()
        self._flushed = False
        self._db_deadline = None
        self.counts = counts
        self.ctx.chunk_number += 1
        return status

    def _settle(self) -> BatchStatus | None:
        """After a failed or unknown commit, wait for the database (within the budget)
        and read, under the unit's row lock, whether the chunk's commit landed: if it
        did, adopt it (its job status is returned); if not, roll the staged writers back
        (None). A unit someone else ended is fenced: its files are left alone."""
        if self._db_deadline is None:
            self._db_deadline = time.monotonic() + retry_budget()
        target = self.counts.commit + 1

        def settle() -> tuple[UnitState, bool]:
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
                for w in self.staged:
                    if landed:
                        w.commit_staged()
                    else:
                        w.rollback()
                return state, landed

        budget = max(self._db_deadline - time.monotonic(), 0.0)
        state, landed = Retrier(self._what, budget=budget)(settle)
        self._flushed = False
        if not landed:
            return None
        self._db_deadline = None
        self.ctx.step_context.clear()
        self.ctx.step_context.update(state.context)
        self.counts = state.counts
        self.ctx.chunk_number += 1
        return state.job_status

    def _scan(self, outputs: list[Any], chunk: _Chunk) -> BatchStatus:
        """Write item by item to find the bad ones: the writers outside the transaction
        first, then the transactional ones each under a savepoint; skip the items any
        writer refuses, and commit the rest (staged writers re-stage just those)."""
        while True:
            skips = list(chunk.skips)
            try:
                good = self._scan_unbound(outputs, skips)
            except Exception:
                for w in self.staged:
                    w.rollback()
                raise
            try:
                return self._settled(partial(self._scan_commit, outputs, chunk, good, skips))
            except _Redo:
                continue

    def _scan_unbound(self, outputs: list[Any], skips: list[tuple[str, Any, str]]) -> list[Any]:
        good = []
        for item in outputs:
            try:
                for w in self.unbound:
                    w.write([item])
            except Exception as e:
                if not self.policy.can_skip(e, self.counts.skip + len(skips)):
                    raise
                skips.append(("write", item, error_text(e)))
                continue
            good.append(item)
        return good

    def _scan_commit(
        self,
        outputs: list[Any],
        chunk: _Chunk,
        good: list[Any],
        skips: list[tuple[str, Any, str]],
    ) -> tuple[BatchStatus, Counts]:
        context = self.ctx.step_context
        with self.repo.write() as conn:
            if self.bound:
                good = self._scan_bound(conn, good, skips)
            for w in self.staged:  # just what every writer accepted (encoding, no I/O)
                w.rollback()
                if good:
                    w.write(good)
            counts = self._counts(chunk, outputs, len(good))
            self._update_streams(context)
            status = self.repo.checkpoint(conn, self.step, counts, context, skips)
            self._flush_staged()
            return status, counts

    def _scan_bound(
        self, conn: Any, items: list[Any], skips: list[tuple[str, Any, str]]
    ) -> list[Any]:
        good = []
        for w in self.bound:
            w.bind_transaction(conn)
        try:
            for item in items:
                try:
                    with conn.begin_nested():
                        for w in self.bound:
                            w.write([item])
                except Exception as e:
                    if is_unavailable(e) or not self.policy.can_skip(
                        e, self.counts.skip + len(skips)
                    ):
                        raise
                    skips.append(("write", item, error_text(e)))
                    continue
                good.append(item)
        finally:
            for w in self.bound:
                w.bind_transaction(None)
        return good

    def _update_streams(self, context: dict[str, Any]) -> None:
        for s in (self.reader, *self.writers):
            if hasattr(s, "update"):
                s.update(context)
        context[CHUNKS_KEY] = self.ctx.chunk_number + 1


_SKIPPED = object()


def _reader(obj: Any, ref: str) -> Any:
    """Accept a reader object, or an iterable/generator (wrapped, restartable by count)."""
    if hasattr(obj, "read"):
        return obj
    if callable(obj):
        raise BatonError(f"reader {ref} is a function; expected a class or object with read()")
    if hasattr(obj, "__iter__"):
        from baton.items.support import IterableReader

        return IterableReader(obj)
    raise BatonError(f"reader {ref} has no read() method")


def describe_failure(e: BaseException) -> str:
    """One line first (what the CLI shows), then the traceback for `baton show`."""
    tb = "".join(traceback.format_exception(e)).rstrip()
    return f"{error_text(e)}\n{tb}"
