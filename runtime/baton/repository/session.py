"""The repository's connection to its database: engine, read sessions, write transactions.

Every role of the repository reads and writes through these two context managers, so a
database that is down or busy surfaces as DatabaseUnavailable (or DatabaseBusy) in one
place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from baton.core.errors import DatabaseUnavailable
from baton.repository.engine import (
    is_unavailable,
    make_engine,
    migrate,
    unavailable,
    write_transaction,
)


class RepositorySession:
    """The engine and its read/write plumbing (the base every repository role extends)."""

    def __init__(
        self,
        url: str,
        *,
        engine: Engine | None = None,
        auto_migrate: bool = True,
        interactive: bool = False,
    ):
        """``interactive``: a command a person waits for (stop, listings): on SQLite a
        write waits 10 s, not 60 s, for another's write lock before DatabaseBusy
        ($BATON_DB_BUSY_TIMEOUT overrides both)."""
        self.engine = engine or make_engine(url, interactive=interactive)
        self.url = str(self.engine.url.render_as_string(hide_password=False))
        if auto_migrate:
            migrate(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A read-only ORM session (entities come back as rows of the typed classes).
        Its transaction ends in COMMIT, not ROLLBACK: a read is not a failure (a
        database's rollback counters are watched for errors)."""
        try:
            # expire_on_commit=False: rows read stay loaded after the session ends
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
                session.commit()
        except DBAPIError as e:
            raise self._unavailable(e) from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (the chunk loop uses it for its checkpoint). A database
        that is down, busy past the busy timeout or not one is DatabaseUnavailable (or
        DatabaseBusy); an error about a statement (a user's writer's) stays as it is."""
        try:
            with write_transaction(self.engine) as conn:
                yield conn
        except DBAPIError as e:
            if is_unavailable(e):
                raise self._unavailable(e) from None
            raise

    def _unavailable(self, e: DBAPIError) -> DatabaseUnavailable:
        return unavailable(e, self.engine)
