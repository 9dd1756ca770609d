"""One writer that writes each chunk to several (Spring Batch's CompositeItemWriter)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from baton.core.errors import InvalidDefinition
from baton.items.protocols import RunningStep
from baton.spec.refs import build


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

    def __init__(self, writers: Sequence[Any], step: RunningStep | None = None):
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
