"""Rows in blocks: one multi-row ``INSERT … VALUES (…), (…), …`` per block of rows.

psycopg 3's ``executemany`` pipelines a chunk in one round trip, but it still binds,
sends and reads back one statement per row, in Python: about 5 µs a row, most of an
INSERT chunk's time. PostgreSQL's JDBC driver does better with
``reWriteBatchedInserts=true``, which rewrites a batch into multi-row VALUES
statements; this is the same rewrite, for PostgreSQL. A chunk goes in as
``executemany`` of ONE block statement (``BLOCK_ROWS`` rows each) plus the single-row
statement for the remainder, so there are two statement texts per table, whatever the
chunk's size (psycopg prepares both once), and the rows and their order, the
per-row triggers, the constraint errors and the transaction are the same as row by
row.

An upsert whose block holds the same conflict key twice would fail (PostgreSQL:
"ON CONFLICT DO UPDATE command cannot affect row a second time") where the row-wise
statement updates the row twice; such a chunk goes row by row.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

BLOCK_ROWS = 100  # rows per multi-row statement: most of the gain, small statements
MAX_PARAMETERS = 65_535  # PostgreSQL's limit of bind parameters per statement


@functools.lru_cache(maxsize=256)
def block_sql(sql: str, rows: int) -> str | None:
    """``sql`` (a single-row ``INSERT … VALUES (…) [ON CONFLICT …]``) for ``rows``
    rows, or None when its VALUES group cannot be repeated safely (none found, a
    string literal in it)."""
    head, sep, rest = sql.partition(" VALUES (")
    if not sep or " VALUES (" in rest:
        return None
    depth, end = 1, -1
    for i, ch in enumerate(rest):
        if ch == "'":
            return None
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            end = i
            break
    if end < 0:
        return None
    group = f"({rest[:end]})"
    return f"{head} VALUES {', '.join([group] * rows)}{rest[end + 1 :]}"


def block_rows(width: int) -> int:
    """Rows per block statement for rows of ``width`` parameters."""
    return max(1, min(BLOCK_ROWS, MAX_PARAMETERS // max(1, width)))


def in_blocks(
    sql: str, params: Sequence[tuple[Any, ...]], *, distinct: Sequence[int] = ()
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The (statement, parameter sets) to ``executemany`` for positional ``params``:
    whole blocks first, then the remainder row by row. ``distinct``: the positions of
    an upsert's conflict columns, which must not repeat within a block (else the
    chunk goes row by row)."""
    width = len(params[0]) if params else 0
    size = block_rows(width)
    whole = len(params) - len(params) % size
    multi = block_sql(sql, size) if whole else None
    if multi is None or (distinct and not _distinct(params[:whole], size, distinct)):
        return [(sql, list(params))]
    blocks = [tuple(chain.from_iterable(params[i : i + size])) for i in range(0, whole, size)]
    plan: list[tuple[str, list[tuple[Any, ...]]]] = [(multi, blocks)]
    if whole < len(params):
        plan.append((sql, list(params[whole:])))
    return plan


def _distinct(params: Sequence[tuple[Any, ...]], size: int, positions: Sequence[int]) -> bool:
    key = itemgetter(*positions)
    for i in range(0, len(params), size):
        block = params[i : i + size]
        if len(set(map(key, block))) != len(block):
            return False
    return True
