"""Alert channels, rules, the events they matched, and the deliveries that carry them."""

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
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from exekra.db.base import Base, created_at_column, uuid_pk


class ChannelType(StrEnum):
    EMAIL = "EMAIL"
    WEBHOOK = "WEBHOOK"
    SLACK = "SLACK"


class AlertEventType(StrEnum):
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    STOPPED = "STOPPED"
    RUNNER_OFFLINE = "RUNNER_OFFLINE"


class DeliveryKind(StrEnum):
    ALERT = "ALERT"  # one event, sent at once
    DIGEST = "DIGEST"  # the events of a rule's cool-down window, sent when it ends


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"  # waiting for its time (`next_attempt_at`)
    SENDING = "SENDING"  # claimed by a hub process until `lease_until`
    SENT = "SENT"
    FAILED = "FAILED"  # gave up after the last attempt


class AlertChannel(Base):
    """Where alerts go. Non-secret settings in `config` (a webhook's URL, an email's recipients); the secret
    ones (a webhook's signing secret, a Slack incoming-webhook URL) sealed like credentials' fields."""

    __tablename__ = "alert_channels"
    __table_args__ = (CheckConstraint("type IN ('EMAIL','WEBHOOK','SLACK')", name="type"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default="true")
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
    sealed_secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class AlertRule(Base):
    """Which events (of one workflow, or of all) alert which channel, and its cool-down window."""

    __tablename__ = "alert_rules"
    __table_args__ = (
        CheckConstraint("cooldown_seconds >= 0", name="cooldown_seconds"),
        CheckConstraint("offline_minutes >= 1", name="offline_minutes"),
        Index("ix_alert_rules_workflow_id", "workflow_id"),
        Index("ix_alert_rules_channel_id", "channel_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default="true")
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("workflows.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("alert_channels.id", ondelete="RESTRICT"), nullable=False
    )
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False)
    offline_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=5, server_default="5")
    cooldown_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=300, server_default="300")
    # The end of the current cool-down window: events before it wait for the window's digest.
    window_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class AlertDelivery(Base):
    """One message to one channel, with its attempts: the outbox the delivery workers claim from."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        CheckConstraint("kind IN ('ALERT','DIGEST')", name="kind"),
        CheckConstraint("status IN ('PENDING','SENDING','SENT','FAILED')", name="status"),
        # The workers' question: what is due (or whose lease ran out)?
        Index(
            "ix_alert_deliveries_due",
            "next_attempt_at",
            postgresql_where="status IN ('PENDING','SENDING')",
        ),
        Index("ix_alert_deliveries_created_at", "created_at", "id"),
        Index("ix_alert_deliveries_rule_id", "rule_id"),
        Index("ix_alert_deliveries_channel_id", "channel_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("alert_rules.id", ondelete="SET NULL"))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("alert_channels.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=DeliveryStatus.PENDING)
    event_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The message, fixed when it is first claimed (a digest's events are counted then), then sent as it is.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_http_status: Mapped[int | None] = mapped_column(Integer)
    # Every attempt: [{at, ok, httpStatus, error}]
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list, server_default="[]")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AlertEvent(Base):
    """An event a rule matched, once per (rule, source): an execution's end, or a runner's offline episode."""

    __tablename__ = "alert_events"
    __table_args__ = (
        UniqueConstraint("rule_id", "source_key"),
        Index("ix_alert_events_delivery_id", "delivery_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    rule_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    source_key: Mapped[str] = mapped_column(String(200), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    execution_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    runner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("alert_deliveries.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
