"""flows: step execution kinds (compensation, callback) and per-instance partitions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("baton_step_execution", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=12), server_default="step", nullable=False)
        )
        batch_op.drop_constraint("uq_baton_step_partition", type_="unique")
        batch_op.create_unique_constraint(
            "uq_baton_step_unit", ["job_execution_id", "step_name", "partition", "kind"]
        )
    op.create_table(
        "baton_partition",
        sa.Column("instance_id", Id, nullable=False),
        sa.Column("step_name", sa.String(length=63), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("args", sa.JSON(), nullable=True),
        sa.Column("added_by", sa.String(length=63), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["baton_job_instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("instance_id", "step_name", "idx"),
    )


def downgrade() -> None:
    op.drop_table("baton_partition")
    with op.batch_alter_table("baton_step_execution", schema=None) as batch_op:
        batch_op.drop_constraint("uq_baton_step_unit", type_="unique")
        batch_op.create_unique_constraint(
            "uq_baton_step_partition", ["job_execution_id", "step_name", "partition"]
        )
        batch_op.drop_column("kind")
