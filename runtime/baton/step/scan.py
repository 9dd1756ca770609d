"""The skip scan: a chunk whose write failed with a skippable error is written again
item by item, to skip just the items a writer refuses (Spring Batch's scan)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from baton.repository.retry import is_unavailable
from baton.step.failures import error_text
from baton.step.writers import ChunkWriters

Skip = tuple[str, Any, str]
"""(phase: read/process/write, the item or None, the error's one line)."""

MaySkip = Callable[[BaseException], bool]
"""Whether the error is skippable (raises SkipLimitExceeded past the limit)."""


def scan_unbound(
    writers: ChunkWriters, items: list[Any], skips: list[Skip], may_skip: MaySkip
) -> list[Any]:
    """The items every writer outside the transaction accepted, one at a time."""
    good = []
    for item in items:
        try:
            for w in writers.unbound:
                w.write([item])
        except Exception as e:
            if not may_skip(e):
                raise
            skips.append(("write", item, error_text(e)))
            continue
        good.append(item)
    return good


def scan_bound(
    conn: Connection,
    writers: ChunkWriters,
    items: list[Any],
    skips: list[Skip],
    may_skip: MaySkip,
) -> list[Any]:
    """The items the transactional writers accepted, each under a savepoint (a refused
    item's rows are rolled back alone); a lost connection is never skipped."""
    good = []
    with writers.bound_to(conn) as bound:
        for item in items:
            try:
                with conn.begin_nested():
                    for w in bound:
                        w.write([item])
            except Exception as e:
                if is_unavailable(e) or not may_skip(e):
                    raise
                skips.append(("write", item, error_text(e)))
                continue
            good.append(item)
    return good
