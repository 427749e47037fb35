"""Trigger and trigger-fire tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from exekra.db.base import Base, created_at_column, uuid_pk


class TriggerKind(StrEnum):
    SCHEDULE = "SCHEDULE"
    WEBHOOK = "WEBHOOK"


class OverlapPolicy(StrEnum):
    """What a schedule fire does while a run it started earlier is still live (see `overlap`)."""

    ALLOW = "allow"
    SKIP = "skip"
    QUEUE_ONE = "queue_one"


class Trigger(Base):
    """A schedule (cron + timezone) or a webhook (a secret token, stored hashed) that starts a workflow."""

    __tablename__ = "triggers"
    __table_args__ = (
        CheckConstraint("type IN ('SCHEDULE','WEBHOOK')", name="type"),
        CheckConstraint("type <> 'SCHEDULE' OR cron_expression IS NOT NULL", name="schedule_has_cron"),
        CheckConstraint("overlap_policy IN ('allow','skip','queue_one')", name="overlap_policy"),
        # The scheduler's question: which enabled schedules are due?
        Index("ix_triggers_next_fire_at", "next_fire_at", postgresql_where="next_fire_at IS NOT NULL"),
        Index("ix_triggers_workflow_id", "workflow_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default="true")
    cron_expression: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Set only while an enabled schedule waits for its next fire (NULL for webhooks and disabled triggers).
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overlap_policy: Mapped[str] = mapped_column(
        String(16), nullable=False, default=OverlapPolicy.ALLOW, server_default=OverlapPolicy.ALLOW.value
    )
    # queue_one: the one fire that waits for the live run to end (its `trigger_fires` row has no execution yet).
    waiting_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_skipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_skip_reason: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class TriggerFire(Base):
    """One row per schedule fire, unique on (trigger, fire time): a fire time is handled once, ever."""

    __tablename__ = "trigger_fires"
    __table_args__ = (PrimaryKeyConstraint("trigger_id", "fire_time"),)

    trigger_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("triggers.id", ondelete="CASCADE"), nullable=False)
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    execution_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("executions.id", ondelete="SET NULL"), index=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    # Why the fire started nothing on purpose (its overlap policy), as opposed to `error`.
    skip_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
