"""What the layers above need from the job repository, as role Protocols.

Code that only reads an execution's state, or only changes its status, can say so in
its type hints (and a test double needs only that role); ``JobRepository`` implements
every role (mypy checks it in ``facade.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from baton.core.entities import JobExecution, StepExecution
from baton.core.status import BatchStatus

if TYPE_CHECKING:
    from baton.repository.states import ExecutionState


class ExecutionReader(Protocol):
    """What deciding about an execution reads: it, its units, and the earlier attempts'."""

    def get_execution(self, execution_id: int) -> JobExecution: ...

    def step_executions(self, execution_id: int) -> list[StepExecution]: ...

    def previous_steps(
        self, execution: JobExecution
    ) -> dict[tuple[str, int | None], StepExecution]: ...

    def partition_counts(self, instance_id: int) -> dict[str, int]: ...

    def execution_states(self, execution_ids: Iterable[int]) -> dict[int, ExecutionState]:
        """All four reads above for many executions at once (a fixed number of
        statements, not four per execution): the operator's tick."""
        ...


class ExecutionControl(ExecutionReader, Protocol):
    """What stop, abandon, recover and finish change: status moves under TRANSITIONS."""

    def transition(
        self,
        execution_id: int,
        to: BatchStatus,
        *,
        action: str,
        exit_code: str | None = None,
        description: str | None = None,
        start: bool = False,
        end: bool = False,
        owner: str | None = None,
        decide: Callable[[JobExecution], BatchStatus | None] | None = None,
    ) -> JobExecution: ...

    def finish(
        self,
        execution_id: int,
        status: BatchStatus,
        description: str,
        exit_code: str | None = None,
    ) -> JobExecution: ...

    def end_orphaned(
        self, execution: JobExecution, status: BatchStatus, description: str, action: str
    ) -> JobExecution: ...
