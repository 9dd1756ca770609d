"""One chunk's input side: read up to ``size`` items and process them, skipping and
retrying by the fault policy; the counts the chunk leads to once written; and when a
reader's estimated total is worth recording again.

A chunk processor (``process_chunk(items) -> items``) gets the whole chunk in one call.
When that call raises an error the policy may skip or retry, the chunk is processed
again item by item, each item as ``process_chunk([item])`` exactly as an item processor
would be (retried, then skipped, or failing the step), so that only the bad item is
skipped and every other item is written once. An error the policy neither skips nor
retries fails the step at once, as it would have on its item."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from baton.core.counts import Counts
from baton.core.errors import BatonError
from baton.items.protocols import ChunkProcessor, EstimatesTotal
from baton.step.components import FaultPolicy
from baton.step.failures import error_text
from baton.step.scan import Skip

_SKIPPED = object()
TOTAL_DRIFT = 0.05
"""How far (relative) an estimated total moves before it is recorded again."""

Process = Callable[[Any], Any] | ChunkProcessor


@dataclass
class Chunk:
    items: list[Any] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    end: bool = False


def read_chunk(read: Callable[[], Any], size: int, policy: FaultPolicy, skipped: int) -> Chunk:
    """Up to ``size`` items (``skipped``: the step's skips before this chunk)."""
    chunk = Chunk()
    while len(chunk.items) < size:
        try:
            item = read()
        except Exception as e:
            if policy.can_skip(e, skipped + len(chunk.skips)):
                chunk.skips.append(("read", None, error_text(e)))
                continue
            raise
        if item is None:
            chunk.end = True
            break
        chunk.items.append(item)
    return chunk


def process_chunk(
    process: Process | None, chunk: Chunk, policy: FaultPolicy, skipped: int
) -> list[Any]:
    """The processed items to write (None filters an item out)."""
    if process is None:
        return list(chunk.items)
    if isinstance(process, ChunkProcessor):
        if not chunk.items:
            return []
        try:
            return _chunk_output(process, chunk.items)
        except Exception as e:
            if not isinstance(e, policy.skippable + policy.retryable):
                raise
        one: Callable[[Any], Any] = partial(_one_item, process)
    else:
        one = process
    out: list[Any] = []
    for item in chunk.items:
        result = _process_item(one, item, chunk, policy, skipped)
        if result is not _SKIPPED and result is not None:
            out.append(result)
    return out


def _chunk_output(process: ChunkProcessor, items: list[Any]) -> list[Any]:
    out = process.process_chunk(list(items))
    if not isinstance(out, list | tuple):
        raise BatonError(
            f"{type(process).__name__}.process_chunk returned {type(out).__name__}; "
            "expected a list of the chunk's output items"
        )
    if len(out) > len(items):
        raise BatonError(
            f"{type(process).__name__}.process_chunk returned {len(out)} items for "
            f"{len(items)}; a chunk processor may filter items, not add them"
        )
    return [o for o in out if o is not None]  # None filters, as an item processor's


def _one_item(process: ChunkProcessor, item: Any) -> Any:
    """The chunk processor on one item, as an item processor: its output or None."""
    out = _chunk_output(process, [item])
    return out[0] if out else None


def _process_item(
    process: Callable[[Any], Any], item: Any, chunk: Chunk, policy: FaultPolicy, skipped: int
) -> Any:
    attempt = 0
    while True:
        try:
            return process(item)
        except Exception as e:
            if policy.can_retry(e, attempt):
                attempt += 1
                policy.before_retry(e, attempt)
                continue
            if policy.can_skip(e, skipped + len(chunk.skips)):
                chunk.skips.append(("process", item, error_text(e)))
                return _SKIPPED
            raise


def counts_after(counts: Counts, chunk: Chunk, outputs: list[Any], written: int) -> Counts:
    """The step's counts once ``written`` of the chunk's ``outputs`` are committed."""
    read_skips = sum(1 for s in chunk.skips if s[0] == "read")
    process_skips = sum(1 for s in chunk.skips if s[0] == "process")
    return replace(
        counts,
        read=counts.read + len(chunk.items),
        filter=counts.filter + len(chunk.items) - len(outputs) - process_skips,
        read_skip=counts.read_skip + read_skips,
        process_skip=counts.process_skip + process_skips,
        write_skip=counts.write_skip + len(outputs) - written,
        write=counts.write + written,
        commit=counts.commit + 1,
    )


class EstimatedTotal:
    """The total of a reader that estimates it (EstimatesTotal), offset by what earlier
    incarnations of the step read; says after each chunk whether to record it again:
    the first estimate, one that drifted more than TOTAL_DRIFT from the one recorded,
    and the exact one at the end. So a file costs a few statements, not one a chunk."""

    def __init__(self, reader: Any, counts: Counts):
        self.reader = reader if isinstance(reader, EstimatesTotal) else None
        self.before = counts.read + counts.read_skip
        self.recorded: int | None = None

    @property
    def estimates(self) -> bool:
        """Whether the reader estimates its total (then it is not asked for one)."""
        return self.reader is not None

    def after_chunk(self, end: bool) -> int | None:
        """The total to record now, or None (nothing new worth a statement)."""
        if self.reader is None:
            return None
        estimate = self.reader.estimate_total()
        if estimate is None:
            return None
        total = estimate + self.before
        if total == self.recorded:
            return None
        if self.recorded is None or end or _drifted(total, self.recorded):
            self.recorded = total
            return total
        return None


def _drifted(estimate: int, recorded: int) -> bool:
    return abs(estimate - recorded) > TOTAL_DRIFT * max(recorded, 1)
