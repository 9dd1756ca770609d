"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "baton_job_instance",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_name", sa.String(length=253), nullable=False),
        sa.Column("job_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_name", "job_key", name="uq_baton_instance_key"),
    )
    op.create_table(
        "baton_job_execution",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "instance_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("exit_code", sa.String(length=40), nullable=False),
        sa.Column("exit_description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("source_dir", sa.Text(), nullable=True),
        sa.Column("job_spec", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["baton_job_instance.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("baton_job_execution", schema=None) as batch_op:
        batch_op.create_index("ix_baton_execution_instance", ["instance_id"], unique=False)
        batch_op.create_index("ix_baton_execution_status", ["status"], unique=False)

    op.create_table(
        "baton_job_execution_param",
        sa.Column(
            "execution_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("identifying", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["baton_job_execution.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id", "name"),
    )
    op.create_table(
        "baton_step_execution",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "job_execution_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("step_name", sa.String(length=63), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("read_count", sa.BigInteger(), nullable=False),
        sa.Column("write_count", sa.BigInteger(), nullable=False),
        sa.Column("filter_count", sa.BigInteger(), nullable=False),
        sa.Column("read_skip_count", sa.BigInteger(), nullable=False),
        sa.Column("process_skip_count", sa.BigInteger(), nullable=False),
        sa.Column("write_skip_count", sa.BigInteger(), nullable=False),
        sa.Column("commit_count", sa.BigInteger(), nullable=False),
        sa.Column("rollback_count", sa.BigInteger(), nullable=False),
        sa.Column("total_count", sa.BigInteger(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exit_code", sa.String(length=40), nullable=False),
        sa.Column("exit_description", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("peak_memory_kb", sa.BigInteger(), nullable=True),
        sa.Column("incarnations", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_execution_id"], ["baton_job_execution.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "job_execution_id", "step_name", "partition", name="uq_baton_step_partition"
        ),
    )
    op.create_table(
        "baton_skipped_item",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "step_execution_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("phase", sa.String(length=10), nullable=False),
        sa.Column("item", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_execution_id"], ["baton_step_execution.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("baton_skipped_item", schema=None) as batch_op:
        batch_op.create_index("ix_baton_skipped_step", ["step_execution_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("baton_skipped_item", schema=None) as batch_op:
        batch_op.drop_index("ix_baton_skipped_step")

    op.drop_table("baton_skipped_item")
    op.drop_table("baton_step_execution")
    op.drop_table("baton_job_execution_param")
    with op.batch_alter_table("baton_job_execution", schema=None) as batch_op:
        batch_op.drop_index("ix_baton_execution_status")
        batch_op.drop_index("ix_baton_execution_instance")

    op.drop_table("baton_job_execution")
    op.drop_table("baton_job_instance")
