"""The chunk loop: read ``size`` items, process them, write them and checkpoint, all
of the write side in one transaction per chunk.

Fault tolerance follows Spring Batch: read and process errors of a skippable type are
skipped (up to ``skipLimit``); process and write errors of a retryable type are retried
(up to ``retryLimit``); a chunk whose write still fails with a skippable error is
scanned item by item (each under a savepoint) to skip just the bad items.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from baton.domain import BatchStatus
from baton.errors import BatonError, DatabaseUnavailable
from baton.items.protocols import KnowsTotal, TransactionalWriter
from baton.loading import build, resolve_exception
from baton.repository import Counts, JobRepository, StepExecution
from baton.spec import ChunkSpec
from baton.step.context import StepContext

CHUNKS_KEY = "baton.chunks"
CONTINUE = "CONTINUE"


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
        self.counts = Counts.of(step)  # a resumed incarnation continues its counts

    def run(self) -> ChunkOutcome:
        streams = [s for s in (self.reader, self.writer) if hasattr(s, "open")]
        opened: list[Any] = []
        try:
            for s in streams:
                s.open(self.ctx.step_context)
                opened.append(s)
            if isinstance(self.reader, KnowsTotal):
                total = self.reader.total()
                if total is not None:
                    self.repo.set_total(self.step.id, total + self.counts.read)
            return self._loop()
        finally:
            for s in reversed(opened):
                if hasattr(s, "close"):
                    s.close()

    def _loop(self) -> ChunkOutcome:
        self.ctx.chunk_number = int(self.ctx.step_context.get(CHUNKS_KEY, 0))
        started = time.monotonic()
        durations: list[float] = []
        while True:
            if self.ctx.stop_requested:
                return ChunkOutcome(BatchStatus.STOPPED, self.counts, "stopped on signal")
            if self._budget_spent(started, durations):
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
            durations.append(time.monotonic() - chunk_start)
            if chunk.end:
                return ChunkOutcome(BatchStatus.COMPLETED, self.counts)
            if job_status is BatchStatus.STOPPING:
                return ChunkOutcome(BatchStatus.STOPPED, self.counts, "stopped on request")

    def _budget_spent(self, started: float, durations: list[float]) -> bool:
        """Would the next chunk overrun the time budget? Predicted from the recent chunks
        of this incarnation (at least one chunk always runs, so work progresses)."""
        if not self.max_duration or not durations:
            return False
        recent = durations[-5:]
        predicted = max(sum(recent) / len(recent), recent[-1])
        return bool(time.monotonic() - started + predicted > self.max_duration)

    # ------------------------------------------------------------ read / process

    def _read_chunk(self) -> _Chunk:
        chunk = _Chunk()
        while len(chunk.items) < self.spec.size:
            try:
                item = self.reader.read()
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

    def _write_chunk(self, outputs: list[Any], chunk: _Chunk) -> BatchStatus:
        read_skips = sum(1 for s in chunk.skips if s[0] == "read")
        process_skips = sum(1 for s in chunk.skips if s[0] == "process")
        attempt = 0
        while True:
            counts = replace(
                self.counts,
                read=self.counts.read + len(chunk.items),
                filter=self.counts.filter + len(chunk.items) - len(outputs) - process_skips,
                read_skip=self.counts.read_skip + read_skips,
                process_skip=self.counts.process_skip + process_skips,
                write=self.counts.write + len(outputs),
                commit=self.counts.commit + 1,
            )
            try:
                status = self._commit(outputs, counts, chunk.skips)
                self.counts = counts
                self.ctx.chunk_number += 1
                return status
            except DatabaseUnavailable:
                raise
            except Exception as e:
                self.counts = replace(self.counts, rollback=self.counts.rollback + 1)
                if self.policy.can_retry(e, attempt):
                    attempt += 1
                    continue
                if isinstance(e, self.policy.skippable) and outputs:
                    return self._scan(outputs, chunk, read_skips, process_skips)
                raise

    def _commit(
        self, outputs: list[Any], counts: Counts, skips: list[tuple[str, Any, str]]
    ) -> BatchStatus:
        context = self.ctx.step_context
        with self.repo.write() as conn:
            bound = isinstance(self.writer, TransactionalWriter) and self.writer.bind_transaction(
                conn
            )
            try:
                if outputs:
                    self.writer.write(outputs)
            finally:
                if bound:
                    self.writer.bind_transaction(None)
            self._update_streams(context)
            return self.repo.checkpoint(conn, self.step, counts, context, skips)

    def _scan(
        self, outputs: list[Any], chunk: _Chunk, read_skips: int, process_skips: int
    ) -> BatchStatus:
        """Write item by item, each under a savepoint, skipping the ones that fail."""
        context = self.ctx.step_context
        skips = list(chunk.skips)
        written = 0
        with self.repo.write() as conn:
            bound = isinstance(self.writer, TransactionalWriter) and self.writer.bind_transaction(
                conn
            )
            try:
                for item in outputs:
                    try:
                        with conn.begin_nested():
                            self.writer.write([item])
                        written += 1
                    except DatabaseUnavailable:
                        raise
                    except Exception as e:
                        if not self.policy.can_skip(e, self.counts.skip + len(skips)):
                            raise
                        skips.append(("write", item, error_text(e)))
            finally:
                if bound:
                    self.writer.bind_transaction(None)
            counts = replace(
                self.counts,
                read=self.counts.read + len(chunk.items),
                filter=self.counts.filter + len(chunk.items) - len(outputs) - process_skips,
                read_skip=self.counts.read_skip + read_skips,
                process_skip=self.counts.process_skip + process_skips,
                write_skip=self.counts.write_skip + len(outputs) - written,
                write=self.counts.write + written,
                commit=self.counts.commit + 1,
            )
            self._update_streams(context)
            status = self.repo.checkpoint(conn, self.step, counts, context, skips)
        self.counts = counts
        self.ctx.chunk_number += 1
        return status

    def _update_streams(self, context: dict[str, Any]) -> None:
        for s in (self.reader, self.writer):
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
