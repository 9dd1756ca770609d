"""The item-oriented interfaces (Spring Batch's ItemReader/Processor/Writer/Stream).

They are structural: any object with the right methods works, no base class needed.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol, runtime_checkable


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
class ItemStream(Protocol):
    """Readers and writers that keep a cursor in the step context (restartable)."""

    def open(self, context: MutableMapping[str, Any]) -> None: ...

    def update(self, context: MutableMapping[str, Any]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class KnowsTotal(Protocol):
    """A reader that can say how many items it will read, for a percentage."""

    def total(self) -> int | None: ...


@runtime_checkable
class TransactionalWriter(Protocol):
    """A writer whose rows go into the checkpoint transaction (exactly once)."""

    def bind_transaction(self, connection: Any) -> bool:
        """Use ``connection`` for the next write; return False to keep its own."""
