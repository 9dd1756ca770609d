"""How a partitioned step is split: by count, by a list of items, or by an earlier
step's result. The decision is pure; the recording goes through a small port so the
flow layer never imports the repository."""

from __future__ import annotations

from typing import Any, Protocol

from baton.core.entities import JobExecution
from baton.core.errors import InvalidDefinition
from baton.spec.model import BatchJob, PartitionsSpec


class PartitionStore(Protocol):
    """What planning needs from the job repository."""

    def results(self, instance_id: int, step_name: str) -> list[Any]: ...

    def plan_partitions(self, instance_id: int, step_name: str, args: list[Any]) -> int: ...


def partition_args(step_name: str, spec: PartitionsSpec, results: list[Any]) -> list[Any]:
    """Each partition's arguments (``results``: the ``fromStep``'s, when it has one)."""
    if spec.count is not None:
        return [{"index": i, "count": spec.count} for i in range(spec.count)]
    if spec.items is not None:
        return list(spec.items)
    produced = results[0] if len(results) == 1 else results
    if not isinstance(produced, list):
        raise InvalidDefinition(
            f"step '{step_name}': fromStep '{spec.from_step}' returned "
            f"{type(produced).__name__}, expected a list of partition args"
        )
    return produced


def plan_partitions(
    repo: PartitionStore, execution: JobExecution, job: BatchJob, step_name: str
) -> int:
    """Record a partitioned step's partitions (once per instance); return their number."""
    spec = job.spec.step(step_name).partitions
    assert spec is not None
    results = repo.results(execution.instance_id, spec.from_step) if spec.from_step else []
    args = partition_args(step_name, spec, results)
    return repo.plan_partitions(execution.instance_id, step_name, args)
