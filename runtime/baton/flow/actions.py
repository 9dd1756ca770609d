"""What the flow engine asks an executor to do next."""

from __future__ import annotations

from dataclasses import dataclass

from baton.core.status import BatchStatus


@dataclass(frozen=True)
class PlanPartitions:
    """Record the partitions of a step (count, items, or a step's result) first."""

    step: str


@dataclass(frozen=True)
class RunStep:
    """Start these units of ``step``: ``partitions`` None for a plain step. The executor
    starts those it is not already running, at most ``parallelism`` at a time."""

    step: str
    partitions: tuple[int, ...] | None = None
    parallelism: int | None = None


@dataclass(frozen=True)
class RunCompensation:
    step: str
    partition: int | None
    error: str


@dataclass(frozen=True)
class RunCallback:
    step: str
    outcome: BatchStatus
    error: str


@dataclass(frozen=True)
class Wait:
    """Units are running; nothing new to start."""

    steps: tuple[str, ...] = ()

    @property
    def step(self) -> str:
        """The first step waited for (chain-only callers)."""
        return self.steps[0] if self.steps else ""


@dataclass(frozen=True)
class Finish:
    status: BatchStatus
    description: str = ""
    exit_code: str | None = None
    """The execution's exit code (default: the status's name), e.g. DeadlineExceeded."""


Action = PlanPartitions | RunStep | RunCompensation | RunCallback | Wait | Finish
