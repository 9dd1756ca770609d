"""One chunk's input side: read up to ``size`` items and process them, skipping and
retrying by the fault policy; and the counts the chunk leads to once written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from baton.core.counts import Counts
from baton.step.components import FaultPolicy
from baton.step.failures import error_text
from baton.step.scan import Skip

_SKIPPED = object()


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
    process: Callable[[Any], Any] | None, chunk: Chunk, policy: FaultPolicy, skipped: int
) -> list[Any]:
    """The processed items to write (None filters an item out)."""
    if process is None:
        return list(chunk.items)
    out: list[Any] = []
    for item in chunk.items:
        result = _process_item(process, item, chunk, policy, skipped)
        if result is not _SKIPPED and result is not None:
            out.append(result)
    return out


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
