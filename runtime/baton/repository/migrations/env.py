"""Alembic environment: always runs on a connection handed in by baton.repository."""

from __future__ import annotations

from alembic import context
from baton.repository.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic` CLI use by developers
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///baton.db"
    connection = create_engine(url).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table="baton_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
