"""What the reconciler reads (the repository's state; the cluster's side is
:class:`~baton_operator.k8s.cluster.ObservedJob`), the situation one decision is made
in, and the draft of what it decides: the typed status being built and the actions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from baton.core.entities import JobExecution, StepExecution
from baton.core.status import BatchStatus, UnitKind
from baton.flow.state import FlowState
from baton.repository.states import ExecutionState
from baton.spec.model import BatchJob

from baton_operator.config import OperatorConfig
from baton_operator.k8s.cluster import ObservedJob
from baton_operator.k8s.resources import BatchExecution, Condition, ExecutionStatus
from baton_operator.reconcile.actions import Action, PatchStatus
from baton_operator.reconcile.conditions import Truth, set_condition


@dataclass(frozen=True)
class RepositoryState:
    """What the job repository says about the execution's current attempt."""

    execution: JobExecution | None = None
    steps: tuple[StepExecution, ...] = ()
    # (step, partition) → status of its latest execution in earlier attempts
    previous: Mapping[tuple[str, int | None], BatchStatus] = field(default_factory=dict)
    # partitioned step → number of partitions planned for the instance
    partitions: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, found: ExecutionState) -> RepositoryState:
        """From the repository's batched read (the tick's, for many executions)."""
        return cls(
            execution=found.execution,
            steps=found.steps,
            previous={key: s.status for key, s in found.previous.items()},
            partitions=found.partitions,
        )


@dataclass(frozen=True)
class Situation:
    """Everything one decision about a launched execution reads."""

    execution: BatchExecution
    current: JobExecution  # the repository's JobExecution of the current attempt
    snapshot: BatchJob  # the job as launched
    state: FlowState
    repo: RepositoryState
    jobs: Sequence[ObservedJob]
    config: OperatorConfig
    now: dt.datetime
    namespace: str
    uid: str

    @property
    def mine(self) -> list[ObservedJob]:
        """The Jobs of the current JobExecution (not of an earlier attempt)."""
        return [j for j in self.jobs if j.execution_id == self.current.id]

    @property
    def stopping(self) -> bool:
        return self.current.status is BatchStatus.STOPPING

    def live(self, step: str, kind: UnitKind) -> list[ObservedJob]:
        """The unit's Jobs that still run (not finished, not being deleted)."""
        return [
            j
            for j in self.mine
            if j.step == step and j.kind == kind and not j.finished and not j.deleting
        ]


@dataclass
class Draft:
    """The status being decided (a typed copy of the one found) and the actions so far.
    ``.status`` is built here only, from :class:`ExecutionStatus`, dumped by alias."""

    status: ExecutionStatus
    found: dict[str, Any] | None
    conditions: list[Condition]
    actions: list[Action] = field(default_factory=list)

    @classmethod
    def of(cls, execution: BatchExecution) -> Draft:
        found = execution.status
        status = found.model_copy(deep=True) if found is not None else ExecutionStatus()
        before = found.dump() if found is not None else None
        return cls(status, before, list(status.conditions or []))

    def condition(
        self, type_: str, status: Truth, reason: str, message: str, now: dt.datetime
    ) -> None:
        self.conditions = set_condition(self.conditions, type_, status, reason, message, now)

    def emit(self) -> list[Action]:
        """Add the status as decided (unless it is the one found); all the actions."""
        self.status.conditions = self.conditions
        new = self.status.dump()
        if new != self.found:
            self.actions.append(PatchStatus(new))
        return self.actions


def flow_state(execution: JobExecution, repo: RepositoryState) -> FlowState:
    """The flow engine's view of the execution, from the repository state."""
    return FlowState.of(execution, repo.steps, repo.previous, repo.partitions)
