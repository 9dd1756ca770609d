"""A chunk step's parts as its manifest names them: reader, processor, writer, and the
fault policy (which errors are skipped or retried)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from baton.core.errors import BatonError, DatabaseUnavailable
from baton.items.memory import IterableReader
from baton.spec.binding import bind_args
from baton.spec.model import ChunkSpec
from baton.spec.refs import build, resolve_exception
from baton.step.context import StepContext
from baton.step.failures import SkipLimitExceeded, error_text

log = logging.getLogger("baton.step")

Pause = Callable[[float], bool]
"""Wait so many seconds; True when a stop or the deadline cut the wait short."""


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class RetryInterrupted(Exception):
    """A stop or the deadline came during a retry's backoff: the chunk is given up
    uncommitted and the step stops at its last committed chunk."""


class FaultPolicy:
    """Spring Batch's skip and retry rules of one chunk step, and the retries' backoff."""

    def __init__(self, spec: ChunkSpec, pause: Pause = _sleep):
        self.skip_limit = spec.skip_limit
        self.retry_limit = spec.retry_limit
        self.skippable = tuple(resolve_exception(n) for n in spec.skip)
        self.retryable = tuple(resolve_exception(n) for n in spec.retry)
        self.backoff = spec.retry_backoff
        self._pause = pause

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

    def before_retry(self, e: BaseException, attempt: int) -> None:
        """Wait ``retryBackoff``'s delay before retry number ``attempt`` (1-based);
        RetryInterrupted when a stop or the deadline ends the wait early."""
        delay = self.backoff.delay(attempt) if self.backoff is not None else 0.0
        log.warning(
            "retry %d of %d in %gs after %s", attempt, self.retry_limit, delay, error_text(e)
        )
        if delay > 0 and self._pause(delay):
            raise RetryInterrupted(f"stopped while waiting to retry after {error_text(e)}")


def build_reader(spec: ChunkSpec, ctx: StepContext) -> Any:
    """The reader object; an iterable or generator is wrapped (restartable by count)."""
    obj = build(spec.reader, ctx.offered(), bind_args(spec.reader_args, ctx, "readerArgs"))
    if hasattr(obj, "read"):
        return obj
    if callable(obj):
        raise BatonError(
            f"reader {spec.reader} is a function; expected a class or object with read()"
        )
    if hasattr(obj, "__iter__"):
        return IterableReader(obj)
    raise BatonError(f"reader {spec.reader} has no read() method")


def build_processor(spec: ChunkSpec, ctx: StepContext) -> Callable[[Any], Any] | Any | None:
    """The processor: an object with ``process_chunk(items)`` as it is (a chunk
    processor, preferred when it has ``process`` too), else an item processor as a
    function (an object's ``process``), or None without one."""
    if not spec.processor:
        return None
    obj = build(spec.processor, ctx.offered(), bind_args(spec.processor_args, ctx, "processorArgs"))
    if callable(getattr(obj, "process_chunk", None)):
        return obj
    if hasattr(obj, "process"):
        return obj.process  # type: ignore[no-any-return]
    if callable(obj):
        return obj  # type: ignore[no-any-return]
    raise BatonError(
        f"processor {obj!r} has neither process_chunk(items) nor process(item), and is not callable"
    )


def build_writer(spec: ChunkSpec, ctx: StepContext) -> Any:
    writer = build(spec.writer, ctx.offered(), bind_args(spec.writer_args, ctx, "writerArgs"))
    if not hasattr(writer, "write"):
        raise BatonError(f"writer {spec.writer} has no write(items) method")
    return writer
