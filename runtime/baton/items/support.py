"""Generic readers and writers that need no medium: lists, iterables, logging."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from baton.core.errors import InvalidDefinition
from baton.loading import build

if TYPE_CHECKING:
    from baton.step.context import StepContext


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


class CompositeWriter:
    """Writes each chunk to several writers in order (Spring Batch's CompositeItemWriter).

    ``writers`` are writer objects, or (in a manifest) ``{"writer": "module:Class",
    "args": {...}}`` built like a step's writer. ``open``/``update``/``close`` and the
    transaction hooks go to every delegate that has them. The chunk loop looks through
    a composite (``delegates``) and treats each delegate as if it were the step's
    writer: the SQL writer's rows join the checkpoint transaction, file writers are
    fenced, other writers run before it. Give file writers of one composite distinct
    ``name``s: each keeps its offset under its own key.
    """

    def __init__(self, writers: Sequence[Any], step: StepContext | None = None):
        offered = step.offered() if step is not None else {}
        self.delegates: list[Any] = [_delegate(w, offered) for w in writers]
        if not self.delegates:
            raise InvalidDefinition("CompositeWriter needs at least one writer")
        keys = [k for d in self.delegates if isinstance(k := getattr(d, "key", None), str)]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise InvalidDefinition(
                f"CompositeWriter: writers share the context key(s) {', '.join(dup)}; "
                "give each a distinct name"
            )

    def _each(self, method: str, *args: Any) -> None:
        for d in self.delegates:
            if hasattr(d, method):
                getattr(d, method)(*args)

    def open(self, context: MutableMapping[str, Any]) -> None:
        self._each("open", context)

    def write(self, items: list[Any]) -> None:
        self._each("write", items)

    def update(self, context: MutableMapping[str, Any]) -> None:
        self._each("update", context)

    def close(self) -> None:
        errors = []
        for d in reversed(self.delegates):
            try:
                if hasattr(d, "close"):
                    d.close()
            except Exception as e:  # close every delegate, then report the first error
                errors.append(e)
        if errors:
            raise errors[0]

    def bind_transaction(self, connection: Any) -> bool:
        bound = False
        for d in self.delegates:
            if hasattr(d, "bind_transaction"):
                bound = bool(d.bind_transaction(connection)) or bound
        return bound

    def flush_staged(self) -> None:
        self._each("flush_staged")

    def commit_staged(self) -> None:
        self._each("commit_staged")

    def rollback(self) -> None:
        self._each("rollback")


def _delegate(spec: Any, offered: Mapping[str, Any]) -> Any:
    if isinstance(spec, Mapping):
        if set(spec) - {"writer", "args"} or not isinstance(spec.get("writer"), str):
            raise InvalidDefinition(
                "CompositeWriter: each writer is an object or {writer: 'module:Class', args: {...}}"
            )
        spec = build(spec["writer"], offered, spec.get("args") or {})
    if not hasattr(spec, "write"):
        raise InvalidDefinition(f"CompositeWriter: {spec!r} has no write(items) method")
    return spec


def leaf_writers(writer: Any) -> list[Any]:
    """The writers a (possibly nested) composite delegates to; ``[writer]`` otherwise."""
    if isinstance(writer, CompositeWriter):
        return [leaf for d in writer.delegates for leaf in leaf_writers(d)]
    return [writer]
