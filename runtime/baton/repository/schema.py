"""Tables of the job repository, in SQLAlchemy 2's typed ORM style.

The Alembic migrations under ``migrations/versions`` create exactly these; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)
NO_PARTITION = -1


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, Any: JSON}


class JobInstanceRow(Base):
    __tablename__ = "baton_job_instance"
    __table_args__ = (
        UniqueConstraint("namespace", "job_name", "job_key", name="uq_baton_instance_key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # The Kubernetes namespace of the launch ('' for a local run): an instance is
    # (namespace, job name, key), so two namespaces' jobs of one name never share one.
    namespace: Mapped[str] = mapped_column(String(253), default="", server_default=text("''"))
    job_name: Mapped[str] = mapped_column(String(253))
    job_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class RepositoryRow(Base):
    """The repository's identity: one row, a UUID made by the migration that created
    the table. The operator records it in every BatchExecution it launches and leaves
    executions of another repository alone."""

    __tablename__ = "baton_repository"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class JobExecutionRow(Base):
    __tablename__ = "baton_job_execution"
    __table_args__ = (
        Index("ix_baton_execution_instance", "instance_id"),
        Index("ix_baton_execution_status", "status"),
        Index("ix_baton_execution_owner", "owner"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(Id, ForeignKey("baton_job_instance.id"))
    version: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20))
    exit_code: Mapped[str] = mapped_column(String(40), default="UNKNOWN")
    exit_description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    start_time: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    end_time: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    last_updated: Mapped[dt.datetime] = mapped_column(Timestamp)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobParameterRow(Base):
    __tablename__ = "baton_job_execution_param"

    execution_id: Mapped[int] = mapped_column(
        Id, ForeignKey("baton_job_execution.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(Text)
    identifying: Mapped[bool] = mapped_column(Boolean)


class StepExecutionRow(Base):
    __tablename__ = "baton_step_execution"
    __table_args__ = (
        UniqueConstraint(
            "execution_id", "step_name", "partition", "kind", name="uq_baton_step_unit"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    execution_id: Mapped[int] = mapped_column(  # the column keeps its historical name
        "job_execution_id",
        Id,
        ForeignKey("baton_job_execution.id", ondelete="CASCADE"),
        key="execution_id",
    )
    step_name: Mapped[str] = mapped_column(String(63))
    partition: Mapped[int] = mapped_column(Integer, default=NO_PARTITION)
    kind: Mapped[str] = mapped_column(String(12), default="step", server_default="step")
    version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    read_count: Mapped[int] = mapped_column(BigInteger, default=0)
    write_count: Mapped[int] = mapped_column(BigInteger, default=0)
    filter_count: Mapped[int] = mapped_column(BigInteger, default=0)
    read_skip_count: Mapped[int] = mapped_column(BigInteger, default=0)
    process_skip_count: Mapped[int] = mapped_column(BigInteger, default=0)
    write_skip_count: Mapped[int] = mapped_column(BigInteger, default=0)
    commit_count: Mapped[int] = mapped_column(BigInteger, default=0)
    rollback_count: Mapped[int] = mapped_column(BigInteger, default=0)
    total_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(Timestamp)
    end_time: Mapped[dt.datetime | None] = mapped_column(Timestamp, nullable=True)
    last_updated: Mapped[dt.datetime] = mapped_column(Timestamp)
    exit_code: Mapped[str] = mapped_column(String(40), default="EXECUTING")
    exit_description: Mapped[str] = mapped_column(Text, default="")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    peak_memory_kb: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    incarnations: Mapped[int] = mapped_column(Integer, default=1)


class SkippedItemRow(Base):
    __tablename__ = "baton_skipped_item"
    __table_args__ = (Index("ix_baton_skipped_step", "step_execution_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    step_execution_id: Mapped[int] = mapped_column(
        Id, ForeignKey("baton_step_execution.id", ondelete="CASCADE")
    )
    phase: Mapped[str] = mapped_column(String(10))
    item: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class PartitionRow(Base):
    """The partitions of a partitioned step, per instance: declared ones are planned
    when the step first runs, dynamic ones appended by ``ctx.add_partitions``. Kept per
    instance so a restart maps every index to the same args."""

    __tablename__ = "baton_partition"

    instance_id: Mapped[int] = mapped_column(
        Id, ForeignKey("baton_job_instance.id", ondelete="CASCADE"), primary_key=True
    )
    step_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    args: Mapped[Any] = mapped_column(JSON, nullable=True)
    added_by: Mapped[str | None] = mapped_column(String(63), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
