"""What a running step sees: ``ctx`` for tasklets, and ``step`` for components that ask."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import Engine

from baton.core.codec import check_value, encode_context
from baton.core.counts import ContextDelta


class ContextDict(dict[str, Any]):
    """A context that refuses, at the assignment, a value the repository could not store
    and give back (see :mod:`baton.core.codec`): the error names the key and the
    type and fails the step (or chunk) that made it, not a later checkpoint. A value
    changed in place inside a stored list or dict is checked when the context is saved."""

    def __init__(self, *args: Any, what: str = "context", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.what = what

    def __setitem__(self, key: str, value: Any) -> None:
        check_value(key, value, self.what)
        super().__setitem__(key, value)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            check_value(key, default, self.what)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __ior__(self, other: Any) -> ContextDict:  # type: ignore[override,misc]
        self.update(other)
        return self


@dataclass
class StepContext:
    """The step's runtime context.

    ``params``       typed job parameters (read-only mapping);
    ``context``      the job (chain) context: a mutable mapping whose changes are saved
                     when the step completes and seen by later steps and restarts
                     (read-only inside partitions, which run side by side);
    ``step_context`` the step's own execution context (cursors), saved every chunk;
    ``partition``    this partition's args (None outside a partitioned step);
    ``compensation`` for a compensation: {step, partition, error, context};
    ``execution``    for a callback: {id, status, error}.
    """

    job_name: str
    execution_id: int
    instance_id: int
    step_name: str
    partition_index: int | None
    params: Mapping[str, Any]
    context: Any
    step_context: dict[str, Any]
    engine: Engine
    source_dir: Path | None
    attempt: int = 1
    chunk_number: int = 0
    in_chunk: bool = False  # a chunk is being read, processed or written (logs say which)
    partition: Any = None
    compensation: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None
    _results: Callable[[str], list[Any]] | None = field(default=None, repr=False)
    _add_partitions: Callable[[str, Sequence[Any]], list[int]] | None = field(
        default=None, repr=False
    )
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _timeout: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.params = MappingProxyType(dict(self.params))
        if isinstance(self.context, dict) and not isinstance(self.context, ContextDict):
            self.context = ContextDict(self.context, what="job context")
        if not isinstance(self.step_context, ContextDict):
            self.step_context = ContextDict(self.step_context, what="step context")

    @property
    def chunk_id(self) -> str:
        """Stable id of the chunk being written: the same items get the same id on a
        restart, so an external writer can make its writes idempotent."""
        part = "" if self.partition_index is None else f"[{self.partition_index}]"
        return f"{self.job_name}/{self.instance_id}/{self.step_name}{part}/{self.chunk_number}"

    def log_fields(self) -> dict[str, Any]:
        """The unit's fields of a JSON log line (:mod:`baton.core.logformat`); the
        chunk's number is the one in :attr:`chunk_id`."""
        fields: dict[str, Any] = {
            "execution": self.execution_id,
            "step": self.step_name,
            "partition": self.partition_index,
            "attempt": self.attempt,
        }
        if self.in_chunk:
            fields["chunk"] = self.chunk_number
        return fields

    @property
    def stop_requested(self) -> bool:
        """A stop (signal) or this unit's ``timeoutSeconds``: end at the next boundary."""
        return self._stop.is_set() or self._timeout.is_set()

    @property
    def timed_out(self) -> bool:
        """This unit ran past its ``timeoutSeconds``."""
        return self._timeout.is_set()

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (a retry's backoff) unless a stop or the deadline comes
        first; True when one cut the wait short."""
        end = time.monotonic() + seconds
        while not self.stop_requested:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._timeout.wait(min(left, 0.1))  # a signal's stop is seen within 0.1 s
        return True

    def results(self, step: str) -> list[Any]:
        """The results of ``step`` (one per partition, in partition order): the reduce."""
        if self._results is None:
            return []
        return self._results(step)

    def add_partitions(self, step: str, partitions: Sequence[Any]) -> list[int]:
        """Add work to a declared partitioned step; the execution completes only after
        these partitions too. Returns their indices."""
        if self._add_partitions is None:
            raise RuntimeError("add_partitions is only available in a running step")
        return self._add_partitions(step, partitions)

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the job context as the step starts: :meth:`changes` compares
        against it, so values changed in place are seen too."""
        return copy.deepcopy(dict(self.context))

    def changes(self, before: Mapping[str, Any]) -> ContextDelta | None:
        """What the step changed in the job context (None inside a partition, which
        cannot change it). Raises InvalidContext, naming the key, if either context now
        holds a value the repository cannot store: called while the step can still
        fail with that message."""
        encode_context(self.step_context, "step context")
        if isinstance(self.context, MappingProxyType):
            return None
        return ContextDelta.between(before, self.context)

    def offered(self) -> dict[str, Any]:
        """Keyword arguments a component's constructor may ask for."""
        return {
            "params": self.params,
            "context": self.context,
            "step": self,
            "step_context": self.step_context,
            "engine": self.engine,
            "source_dir": self.source_dir,
            "partition": self.partition,
        }
