"""``JobRepository``: every read and write of batch metadata, nothing else.

One class for callers, composed of one mixin per role (each in its own module):
launching instances, execution queries, status transitions under the one table,
step units with their checkpoints, partitions and results, the repository's id."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from baton.repository.identity import RepositoryIdentity
from baton.repository.instances import Instances
from baton.repository.partitions import Partitions
from baton.repository.steps import StepUnits
from baton.repository.transitions import Transitions

if TYPE_CHECKING:
    from baton.repository.protocol import ExecutionControl
    from baton.repository.states import ExecutionState


class JobRepository(Instances, Transitions, StepUnits, Partitions, RepositoryIdentity):
    """Instances, executions, parameters, step executions, contexts and skips (one at a
    time, or many executions' state at once); the repository's own id."""

    def execution_states(self, execution_ids: Iterable[int]) -> dict[int, ExecutionState]:
        """Many executions' state in one transaction (see :mod:`baton.repository.states`)."""
        from baton.repository.states import execution_states

        return execution_states(self, execution_ids)


if TYPE_CHECKING:
    _implements: type[ExecutionControl] = JobRepository  # mypy: the roles' signatures match
