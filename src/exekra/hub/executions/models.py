"""Execution, log and idempotency-key tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from exekra.db.base import Base, created_at_column, uuid_pk


class ExecutionStatus(StrEnum):
    QUEUED = "QUEUED"
    ASSIGNED = "ASSIGNED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


TERMINAL_STATUSES = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.STOPPED})
LIVE_STATUSES = (ExecutionStatus.QUEUED, ExecutionStatus.ASSIGNED, ExecutionStatus.RUNNING)
# Written out (not bound) so that the planner matches it with the partial index below.
LIVE_STATUS_SQL = "status IN (" + ",".join(f"'{s.value}'" for s in LIVE_STATUSES) + ")"


class TriggerType(StrEnum):
    MANUAL = "MANUAL"
    SCHEDULE = "SCHEDULE"
    WEBHOOK = "WEBHOOK"
    API = "API"
    WORKFLOW = "WORKFLOW"  # a child started by its parent's `workflow.run`: `triggeredBy` is the parent's id


class Execution(Base):
    __tablename__ = "executions"
    # The INSERT returns the server-side defaults (queued_at, created_at…) at once: no read-back.
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("status IN ('QUEUED','ASSIGNED','RUNNING','COMPLETED','FAILED','STOPPED')", name="status"),
        CheckConstraint("priority BETWEEN 0 AND 9", name="priority"),
        # The dispatch order: priority, then age (SPEC §5).
        Index(
            "ix_executions_queue",
            text("priority DESC"),
            "queued_at",
            "id",
            postgresql_where="status = 'QUEUED'",
        ),
        Index("ix_executions_workflow_id_created_at", "workflow_id", "created_at"),
        # History lists filtered by workflow or runner and status: each status's newest rows in order, and
        # the capped count, from one index. (Migration 0004 also gives the planner statistics on
        # workflow_id + runner_id, which are correlated: a workflow runs on the runners its labels allow.)
        Index("ix_executions_workflow_id_status_created_at", "workflow_id", "status", "created_at", "id"),
        Index("ix_executions_runner_id_status_created_at", "runner_id", "status", "created_at", "id"),
        Index("ix_executions_created_at_id", "created_at", "id"),
        Index("ix_executions_status_created_at", "status", "created_at"),
        # Retention walks finished executions oldest first (`exekra.hub.retention`).
        Index(
            "ix_executions_terminal_completed_at",
            "completed_at",
            "id",
            postgresql_where="status IN ('COMPLETED','FAILED','STOPPED')",
        ),
        # A schedule trigger's overlap policy asks whether a run it started is still live.
        Index("ix_executions_live_triggered_by", "triggered_by", postgresql_where=LIVE_STATUS_SQL),
        # An execution is retried at most once, whichever hub process retries it (`executions.retries`).
        Index("uq_executions_retry_of", "retry_of", unique=True, postgresql_where="retry_of IS NOT NULL"),
        # The retry check reads, per workflow with a retry policy, its recent failures not yet retried.
        Index("ix_executions_retry_candidates", "workflow_id", "completed_at", postgresql_where="status = 'FAILED'"),
        # The queued executions of one concurrency group in dispatch order: the claims' check, the next to offer
        # when a slot frees, and the waiting reason (`exekra.hub.concurrency`).
        Index(
            "ix_executions_concurrency_queue",
            "workflow_id",
            "concurrency_key",
            text("priority DESC"),
            "queued_at",
            "id",
            postgresql_where="status = 'QUEUED' AND concurrency_key IS NOT NULL",
        ),
        # A parent's `workflow.run` call starts one child per key, however often its request is retried; the index
        # also lists a parent's children (`executions.children`).
        Index(
            "uq_executions_parent_key",
            "parent_id",
            "parent_key",
            unique=True,
            postgresql_where="parent_id IS NOT NULL",
        ),
        # The maintenance pass looks for live children whose parent has ended (`children.stop_orphans`).
        Index(
            "ix_executions_live_children",
            "parent_id",
            postgresql_where=f"parent_id IS NOT NULL AND {LIVE_STATUS_SQL}",
        ),
        # Database-level guard: a runner holds at most one live execution.
        Index(
            "uq_executions_live_runner",
            "runner_id",
            unique=True,
            postgresql_where="status IN ('ASSIGNED','RUNNING')",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    version_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workflow_versions.id", ondelete="CASCADE"), nullable=False
    )
    runner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("runners.id", ondelete="SET NULL"))
    # Matching constraints, copied from the workflow when the execution is queued.
    pinned_runner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    runner_type: Mapped[str | None] = mapped_column(String(100))
    required_labels: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list, server_default="{}")
    # The activities of its version that not every runner has (`exekra.workflow.catalogue.required_activities`).
    required_activities: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, default=list, server_default="{}"
    )
    # Its concurrency group within the workflow (the workflow's `concurrency_key` evaluated on its inputs when it
    # was created, "" without a template); None: created while its workflow had no limit.
    concurrency_key: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=ExecutionStatus.QUEUED)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    requeue_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    triggered_by: Mapped[str | None] = mapped_column(String(100))
    trigger_type: Mapped[str] = mapped_column(String(16), nullable=False, default=TriggerType.API)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    stop_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    stop_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    log_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    # The log's size cap (EXEKRA_MAX_LOG_BYTES_PER_EXECUTION): bytes of messages stored, lines dropped past it.
    log_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    log_dropped: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    # An automatic retry: the execution it retries (the one before it in the chain), and its place (0: original).
    retry_of: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("executions.id", ondelete="SET NULL"))
    retry_attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # A sub-workflow: the execution whose `workflow.run` started this one, and the key of that call in the parent
    # (`<node>:<n>`); `has_children` is set on a parent when its first child is created, so that its end knows
    # whether there are children to stop without a look.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("executions.id", ondelete="SET NULL"))
    parent_key: Mapped[str | None] = mapped_column(String(255))
    has_children: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    # Somebody waits for its end (`executions.endings`): the statement that ends it announces the end.
    end_awaited: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    cpu_avg: Mapped[float | None] = mapped_column(Float)
    cpu_peak: Mapped[float | None] = mapped_column(Float)
    mem_avg_mb: Mapped[float | None] = mapped_column(Float)
    mem_peak_mb: Mapped[float | None] = mapped_column(Float)


class ExecutionLog(Base):
    __tablename__ = "execution_logs"
    __table_args__ = (
        PrimaryKeyConstraint("execution_id", "seq"),
        Index("ix_execution_logs_node_events", "execution_id", "seq", postgresql_where=text("event IS NOT NULL")),
    )

    execution_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    # The top-level node the line belongs to, and on a node's start or end line what happened (NODE_EVENTS).
    node: Mapped[str | None] = mapped_column(String(255))
    event: Mapped[str | None] = mapped_column(String(16))


class ExecutionKey(Base):
    """Duplicate detection (SPEC §5): one row per idempotency key and workflow, reusable after the window."""

    __tablename__ = "execution_keys"
    __table_args__ = (UniqueConstraint("workflow_id", "key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(300), nullable=False)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = created_at_column()
