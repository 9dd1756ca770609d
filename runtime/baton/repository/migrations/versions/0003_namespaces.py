"""namespaces: an instance is (namespace, job name, key); the repository's own id

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Existing instances get namespace '' (what a local run uses), so they keep their
identity and their restart rules. ``baton_repository`` holds one row: a UUID made
here, once per database, that the operator records in every BatchExecution it
launches (an operator leaves executions of another repository alone).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


@contextmanager
def _rebuilding() -> Iterator[None]:
    """SQLite changes a unique key by rebuilding the table; with foreign keys on,
    dropping the old table fails (executions reference it) or cascades (partitions).
    ``PRAGMA foreign_keys`` only changes outside a transaction: end the one Alembic
    runs in, switch them off, rebuild in a transaction of its own, check that every
    reference still holds, switch them on again. (migrate() holds the file lock, so no
    other migrator comes in between; the write lock is taken again at once.)"""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    raw = bind.connection.dbapi_connection
    assert raw is not None
    raw.execute("COMMIT")
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute("BEGIN IMMEDIATE")
    try:
        yield
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration 0003 would break references: {broken[:5]}")
        raw.execute("COMMIT")
    except BaseException:
        raw.execute("ROLLBACK")
        raise
    finally:
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("BEGIN IMMEDIATE")


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("baton_repository"):
        return  # SQLite: done, and committed, just before a crash kept the stamp out
    with _rebuilding():
        table = op.create_table(
            "baton_repository",
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.bulk_insert(table, [{"id": str(uuid.uuid4()), "created_at": dt.datetime.now(dt.UTC)}])
        with op.batch_alter_table("baton_job_instance", schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "namespace", sa.String(length=253), server_default=sa.text("''"), nullable=False
                )
            )
            batch_op.drop_constraint("uq_baton_instance_key", type_="unique")
            batch_op.create_unique_constraint(
                "uq_baton_instance_key", ["namespace", "job_name", "job_key"]
            )


def downgrade() -> None:
    with _rebuilding():
        with op.batch_alter_table("baton_job_instance", schema=None) as batch_op:
            batch_op.drop_constraint("uq_baton_instance_key", type_="unique")
            batch_op.create_unique_constraint("uq_baton_instance_key", ["job_name", "job_key"])
            batch_op.drop_column("namespace")
        op.drop_table("baton_repository")
