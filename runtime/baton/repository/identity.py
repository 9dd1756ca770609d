"""The repository's identity: the UUID its migration made (table ``baton_repository``).

An operator records it in every BatchExecution it launches and leaves executions that
name another one alone, so several operators with their own databases can share a
cluster without touching each other's executions."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import select

from baton.repository.schema import RepositoryRow
from baton.repository.session import RepositorySession


class RepositoryIdentity(RepositorySession):
    """``repository_id``: read once per process (it never changes)."""

    @cached_property
    def repository_id(self) -> str:
        with self._read() as session:
            return str(session.execute(select(RepositoryRow.id)).scalar_one())
