"""CachingJobExplorer: a JobExplorer for dashboards that poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from baton.core.entities import JobExecution, StepExecution
from baton.explore.explorer import JobExplorer
from baton.repository import JobRepository


class CachingJobExplorer(JobExplorer):
    """A JobExplorer that remembers answers: finished executions forever (they cannot
    change), everything else for ``ttl`` seconds."""

    def __init__(self, repository: JobRepository, ttl: float = 2.0):
        super().__init__(repository)
        self.ttl = ttl
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def _cached(
        self,
        key: tuple[Any, ...],
        load: Callable[[], Any],
        forever: Callable[[Any], bool] = lambda _: False,
    ) -> Any:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and (hit[0] == float("inf") or now - hit[0] < self.ttl):
            return hit[1]
        value = load()
        self._cache[key] = (float("inf") if forever(value) else now, value)
        return value

    def execution(self, execution_id: int) -> JobExecution:
        return self._cached(  # type: ignore[no-any-return]
            ("execution", execution_id),
            lambda: super(CachingJobExplorer, self).execution(execution_id),
            lambda e: e.status.terminal,
        )

    def step_executions(self, execution_id: int) -> list[StepExecution]:
        return self._cached(  # type: ignore[no-any-return]
            ("steps", execution_id),
            lambda: super(CachingJobExplorer, self).step_executions(execution_id),
            lambda _: self.execution(execution_id).status.terminal,
        )

    def executions(
        self,
        job: str | None = None,
        *,
        running: bool = False,
        instance_id: int | None = None,
        limit: int | None = None,
    ) -> list[JobExecution]:
        return self._cached(  # type: ignore[no-any-return]
            ("executions", job, running, instance_id, limit),
            lambda: super(CachingJobExplorer, self).executions(
                job, running=running, instance_id=instance_id, limit=limit
            ),
        )

    def job_names(self) -> list[str]:
        return self._cached(  # type: ignore[no-any-return]
            ("job_names",), lambda: super(CachingJobExplorer, self).job_names()
        )

    def invalidate(self) -> None:
        self._cache.clear()
