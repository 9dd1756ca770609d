"""JobExplorer: read-only queries over the job repository, with the checks a caller
expects (an unknown job or execution is an error, not an empty answer)."""

from __future__ import annotations

from typing import Any

from baton.core.entities import JobExecution, JobInstance, SkippedItem, StepExecution
from baton.core.errors import UnknownJob
from baton.explore.views import execution_view
from baton.repository import JobRepository


class JobExplorer:
    """Read-only queries over the job repository."""

    def __init__(self, repository: JobRepository):
        self.repository = repository

    def job_names(self) -> list[str]:
        return self.repository.job_names()

    def job_summaries(self) -> list[dict[str, Any]]:
        return self.repository.job_summaries()

    def instances(self, job: str) -> list[JobInstance]:
        found = self.repository.instances(job)
        if not found and job not in self.repository.job_names():
            raise UnknownJob(f"no job named '{job}' in the repository")
        return found

    def instance_count(self, job: str) -> int:
        return len(self.instances(job))

    def execution(self, execution_id: int) -> JobExecution:
        return self.repository.get_execution(execution_id)

    def executions(
        self,
        job: str | None = None,
        *,
        running: bool = False,
        instance_id: int | None = None,
        limit: int | None = None,
    ) -> list[JobExecution]:
        if job is not None and job not in self.repository.job_names():
            raise UnknownJob(f"no job named '{job}' in the repository")
        return self.repository.executions(
            job=job, running=running, instance_id=instance_id, limit=limit
        )

    def execution_count(self, job: str) -> int:
        return len(self.executions(job))

    def running_executions(self, job: str | None = None) -> list[JobExecution]:
        return self.executions(job, running=True)

    def step_executions(self, execution_id: int) -> list[StepExecution]:
        self.execution(execution_id)
        return self.repository.step_executions(execution_id)

    def step_execution(self, step_execution_id: int) -> StepExecution:
        return self.repository.get_step(step_execution_id)

    def skipped_items(self, execution_id: int) -> list[SkippedItem]:
        self.execution(execution_id)
        return self.repository.skipped_items(execution_id)

    def summary(self, execution_id: int) -> dict[str, Any]:
        """The execution and its steps as ``baton show --json`` prints them."""
        return execution_view(self.execution(execution_id), self.step_executions(execution_id))
