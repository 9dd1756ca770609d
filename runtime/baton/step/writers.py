"""A chunk step's writers by their place around the checkpoint transaction.

A composite writer is looked through: each leaf writer is one of
- *bound*: writes into the checkpoint transaction (the SQL writer on the repository's
  database), so its rows commit with the checkpoint, exactly once;
- *unbound*: writes before the transaction begins (user code, and staging);
- *staged* (also unbound): stages in ``write``, appends its bytes inside the
  transaction after the fence check (``flush_staged``) and forgets or truncates them
  when the transaction does not commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from baton.items.composite import leaf_writers
from baton.items.protocols import StagedWriter, TransactionalWriter


class ChunkWriters:
    def __init__(self, writer: Any):
        self.leaves = leaf_writers(writer)  # a composite's delegates, each on its own
        self.staged: list[Any] = [w for w in self.leaves if isinstance(w, StagedWriter)]
        self.bound: list[Any] = []  # decided by find_bound(): in the checkpoint transaction
        self.unbound: list[Any] = list(self.leaves)
        self.flushed = False  # staged bytes appended in a transaction not yet settled

    def find_bound(self, engine: Engine) -> None:
        """Which writers write into the checkpoint transaction (the SQL writer on the
        repository's database): asked once, on a connection that takes no lock."""
        candidates = [w for w in self.leaves if isinstance(w, TransactionalWriter)]
        bound = []
        if candidates:
            with engine.connect() as conn:
                for w in candidates:
                    try:
                        if w.bind_transaction(conn):
                            bound.append(w)
                    finally:
                        w.bind_transaction(None)
        self.bound = bound
        self.unbound = [w for w in self.leaves if not any(w is b for b in bound)]

    def write_unbound(self, items: list[Any]) -> None:
        """User code and staging: before the transaction."""
        if items:
            for w in self.unbound:
                w.write(items)

    @contextmanager
    def bound_to(self, conn: Connection) -> Iterator[list[Any]]:
        """The bound writers, writing on ``conn`` until the block ends."""
        for w in self.bound:
            w.bind_transaction(conn)
        try:
            yield self.bound
        finally:
            for w in self.bound:
                w.bind_transaction(None)

    def write_bound(self, conn: Connection, items: list[Any]) -> None:
        if not items or not self.bound:
            return
        with self.bound_to(conn) as bound:
            for w in bound:
                w.write(items)

    def flush_staged(self) -> None:
        """Inside the transaction, after the checkpoint's fence check: the file bytes."""
        if self.staged:
            self.flushed = True
            for w in self.staged:
                w.flush_staged()

    def commit_staged(self) -> None:
        for w in self.staged:
            w.commit_staged()

    def rollback_staged(self) -> None:
        for w in self.staged:
            w.rollback()

    def restage(self, items: list[Any]) -> None:
        """Stage just ``items`` again (encoding only, no I/O): after a skip scan."""
        for w in self.staged:
            w.rollback()
            if items:
                w.write(items)
