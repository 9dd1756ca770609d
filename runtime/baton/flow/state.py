"""The flow engine's input: the state of one execution's units, read from its records.

``FlowState.of`` is the one way to build it, so the local executor, the operator and
the launcher (deciding whether an abandon compensates) read an execution the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from baton.core.entities import JobExecution, StepExecution
from baton.core.status import BatchStatus, UnitKind

Key = tuple[str, int | None]
"""A unit of kind step: ``(step, partition)``, partition None for a plain step."""
CONTINUE = "CONTINUE"
"""Exit code of a unit stopped by its time budget: the next incarnation continues it."""
ABANDONED = "ABANDONED"
"""Exit code of an execution that compensates because it was abandoned."""


@dataclass(frozen=True)
class Unit:
    """The state of one unit in the current execution."""

    status: BatchStatus
    exit_code: str = ""
    error: str = ""

    @property
    def continuing(self) -> bool:
        """Stopped by its time budget: the next incarnation picks up."""
        return self.status is BatchStatus.STOPPED and self.exit_code == CONTINUE


@dataclass(frozen=True)
class FlowState:
    steps: Mapping[Key, Unit] = field(default_factory=dict)
    """Units of kind step in this execution."""
    previous: Mapping[Key, BatchStatus] = field(default_factory=dict)
    """Latest status of each unit in earlier executions of the instance."""
    partitions: Mapping[str, int] = field(default_factory=dict)
    """Planned partition count of each partitioned step (per instance)."""
    compensations: Mapping[Key, Unit] = field(default_factory=dict)
    callbacks: Mapping[str, Unit] = field(default_factory=dict)
    stopping: bool = False
    abandoning: bool = False
    """An abandon with compensateOnAbandon: run the saga, start nothing else."""

    @classmethod
    def of(
        cls,
        execution: JobExecution,
        records: Iterable[StepExecution],
        previous: Mapping[Key, BatchStatus],
        partitions: Mapping[str, int],
    ) -> FlowState:
        """The engine's view of an execution from its repository records (both
        executors read it the same way; an abandon that compensates is recorded as
        COMPENSATING with exit code ABANDONED, so either can pick it up)."""
        steps: dict[Key, Unit] = {}
        compensations: dict[Key, Unit] = {}
        callbacks: dict[str, Unit] = {}
        for r in records:
            unit = Unit(r.status, r.exit_code, r.exit_description)
            if r.kind == UnitKind.COMPENSATION:
                compensations[(r.step_name, r.partition)] = unit
            elif r.kind == UnitKind.CALLBACK:
                callbacks[r.step_name] = unit
            else:
                steps[(r.step_name, r.partition)] = unit
        return cls(
            steps=steps,
            previous=dict(previous),
            partitions=dict(partitions),
            compensations=compensations,
            callbacks=callbacks,
            stopping=execution.status is BatchStatus.STOPPING,
            abandoning=execution.status is BatchStatus.COMPENSATING
            and execution.exit_code == ABANDONED,
        )
