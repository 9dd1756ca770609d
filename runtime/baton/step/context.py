"""What a running step sees: ``ctx`` for tasklets, and ``step`` for components that ask."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import Engine


@dataclass
class StepContext:
    """The step's runtime context.

    ``params``   typed job parameters (read-only mapping);
    ``context``  the job (chain) execution context: a mutable mapping saved when the
                 step completes and seen by every later step and by restarts;
    ``step_context`` the step's own execution context (cursors), saved every chunk.
    """

    job_name: str
    execution_id: int
    instance_id: int
    step_name: str
    partition: int | None
    params: Mapping[str, Any]
    context: dict[str, Any]
    step_context: dict[str, Any]
    engine: Engine
    source_dir: Path | None
    attempt: int = 1
    chunk_number: int = 0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self.params = MappingProxyType(dict(self.params))

    @property
    def chunk_id(self) -> str:
        """Stable id of the chunk being written: the same items get the same id on a
        restart, so an external writer can make its writes idempotent."""
        part = "" if self.partition is None else f"[{self.partition}]"
        return f"{self.job_name}/{self.instance_id}/{self.step_name}{part}/{self.chunk_number}"

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def offered(self) -> dict[str, Any]:
        """Keyword arguments a component's constructor may ask for."""
        return {
            "params": self.params,
            "context": self.context,
            "step": self,
            "step_context": self.step_context,
            "engine": self.engine,
            "source_dir": self.source_dir,
        }
