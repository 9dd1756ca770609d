"""an index on the JobExecution's owner: the operator finds the execution a
BatchExecution launched by its owner tag in one indexed read, whatever the job's history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("baton_job_execution", schema=None) as batch_op:
        batch_op.create_index("ix_baton_execution_owner", ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("baton_job_execution", schema=None) as batch_op:
        batch_op.drop_index("ix_baton_execution_owner")
