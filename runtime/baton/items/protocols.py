"""The item-oriented interfaces (Spring Batch's ItemReader/Processor/Writer/Stream).

They are structural: any object with the right methods works, no base class needed.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy import Engine


@runtime_checkable
class ItemReader(Protocol):
    def read(self) -> Any:
        """The next item, or ``None`` at the end of the input."""


@runtime_checkable
class ItemWriter(Protocol):
    def write(self, items: list[Any]) -> None:
        """Write one chunk of items."""


@runtime_checkable
class ItemProcessor(Protocol):
    def process(self, item: Any) -> Any:
        """Transform an item; return ``None`` to filter it out."""


@runtime_checkable
class ChunkProcessor(Protocol):
    """A processor that transforms a whole chunk at once (vectorised: pyarrow, polars,
    one request for many items). The returned list is the output chunk, in order: it
    may be shorter (the missing items count as filtered) but never longer. When
    ``process_chunk`` raises, the chunk is processed again item by item, each as
    ``process_chunk([item])`` under the step's skip and retry rules, to find the bad
    item; so it must not depend on which other items share its chunk."""

    def process_chunk(self, items: list[Any]) -> list[Any]: ...


@runtime_checkable
class ItemStream(Protocol):
    """Readers and writers that keep a cursor in the step context (restartable)."""

    def open(self, context: MutableMapping[str, Any]) -> None: ...

    def update(self, context: MutableMapping[str, Any]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class KnowsTotal(Protocol):
    """A reader that can say how many items it will read, for a percentage. Asked once,
    before the first chunk, which waits for it: keep it cheap (or use EstimatesTotal)."""

    def total(self) -> int | None: ...


@runtime_checkable
class EstimatesTotal(Protocol):
    """A reader whose total firms up as it reads (the file readers: from the file's size
    and the bytes its records took so far). Asked after every chunk, so it must be cheap;
    it never delays the first chunk, as an up-front count of a large input would."""

    def estimate_total(self) -> int | None:
        """Items read from ``open`` to the end: None while unknown, exact at the end."""


@runtime_checkable
class TransactionalWriter(Protocol):
    """A writer whose rows go into the checkpoint transaction (exactly once)."""

    def bind_transaction(self, connection: Any) -> bool:
        """Use ``connection`` for the next write; return False to keep its own."""


@runtime_checkable
class StagedWriter(Protocol):
    """A writer fenced like the SQL writer: ``write()`` only stages a chunk in memory
    (all user work happens there, before the checkpoint transaction begins); the chunk
    loop then calls, inside that transaction and after the checkpoint passed its fence
    check, ``flush_staged()`` to make the chunk durable, and ``commit_staged()`` once
    the transaction committed. ``rollback()`` is called instead when the transaction
    does not commit (retry, skip scan, error, fenced): it forgets the staged chunk and
    undoes what ``flush_staged()`` wrote since the last commit. ``update()`` must already
    record the state the staged chunk leads to (the checkpoint saves it)."""

    def flush_staged(self) -> None: ...

    def commit_staged(self) -> None: ...

    def rollback(self) -> None: ...


class RunningStep(Protocol):
    """What a built-in reader or writer asks of the step that builds it (its ``step``
    argument; :class:`baton.StepContext` is one): the repository's engine, and what a
    component's constructor may be offered. Items stay below the step runtime."""

    engine: Engine

    def offered(self) -> dict[str, Any]: ...
