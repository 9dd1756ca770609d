"""Readers and writers that need no medium: any iterable in, a list out."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any


class IterableReader:
    """Reads any iterable; restartable by skipping the items already read.

    The iterable must yield the same items in the same order on every run.
    """

    def __init__(self, items: Iterable[Any], name: str = "iterable"):
        self._items = items
        self._it: Iterator[Any] = iter(())
        self._count = 0
        self.key = f"{name}.read.count"

    def open(self, context: MutableMapping[str, Any]) -> None:
        self._count = int(context.get(self.key, 0))
        self._it = itertools.islice(iter(self._items), self._count, None)

    def read(self) -> Any:
        item = next(self._it, None)
        if item is not None:
            self._count += 1
        return item

    def update(self, context: MutableMapping[str, Any]) -> None:
        context[self.key] = self._count

    def close(self) -> None:
        self._it = iter(())

    def total(self) -> int | None:
        try:
            return len(self._items) - self._count  # type: ignore[arg-type]
        except TypeError:
            return None


class ListWriter:
    """Collects written items in memory: for tests and examples."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def write(self, items: list[Any]) -> None:
        self.items.extend(items)
