"""What a step reports back: its counters, and the job-context keys it changed.

Plain values kept in memory by the chunk loop and the step context, written whole by
the repository (pure: the lean step process and the pure layers can hold them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton.core.codec import encode_context
from baton.core.entities import StepExecution


@dataclass
class Counts:
    """A step execution's counters, kept in memory by the chunk loop and written whole."""

    read: int = 0
    write: int = 0
    filter: int = 0
    read_skip: int = 0
    process_skip: int = 0
    write_skip: int = 0
    commit: int = 0
    rollback: int = 0

    @property
    def skip(self) -> int:
        return self.read_skip + self.process_skip + self.write_skip

    @classmethod
    def of(cls, step: StepExecution) -> Counts:
        return cls(
            read=step.read_count,
            write=step.write_count,
            filter=step.filter_count,
            read_skip=step.read_skip_count,
            process_skip=step.process_skip_count,
            write_skip=step.write_skip_count,
            commit=step.commit_count,
            rollback=step.rollback_count,
        )

    def columns(self) -> dict[str, int]:
        return {
            "read_count": self.read,
            "write_count": self.write,
            "filter_count": self.filter,
            "read_skip_count": self.read_skip,
            "process_skip_count": self.process_skip,
            "write_skip_count": self.write_skip,
            "commit_count": self.commit,
            "rollback_count": self.rollback,
        }


@dataclass
class ContextDelta:
    """What a step changed in the job context: keys set and keys removed."""

    updated: dict[str, Any]
    removed: set[str]

    @classmethod
    def between(cls, before: Mapping[str, Any], after: Mapping[str, Any]) -> ContextDelta:
        """The change; InvalidContext (naming the key) when a value set, or changed in
        place, cannot be stored: raised here, where the step can still fail with it."""
        delta = cls(
            {k: v for k, v in after.items() if k not in before or before[k] != v},
            set(before) - set(after),
        )
        delta.encoded()
        return delta

    @property
    def changed(self) -> bool:
        return bool(self.updated or self.removed)

    def encoded(self) -> dict[str, Any]:
        return encode_context(self.updated, "job context")

    def apply(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """Merge into a context in its stored (encoded) form."""
        merged = {k: v for k, v in context.items() if k not in self.removed}
        merged.update(self.encoded())
        return merged
