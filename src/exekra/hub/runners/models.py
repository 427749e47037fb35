"""Runner and heartbeat-metric tables."""

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
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from exekra.db.base import Base, created_at_column, uuid_pk


class RunnerStatus(StrEnum):
    ONLINE = "ONLINE"
    BUSY = "BUSY"
    OFFLINE = "OFFLINE"


def idle(alias: str = "") -> str:
    """SQL: the runner (alias `alias`, or the runners table unqualified) is idle: it may be handed work. The one copy
    of the condition, for the idle runners' partial index and the statements it serves."""
    r = f"{alias}." if alias else ""
    return f"{r}status = 'ONLINE' AND {r}enabled AND {r}current_execution_id IS NULL"


class Runner(Base):
    __tablename__ = "runners"
    __table_args__ = (
        CheckConstraint("status IN ('ONLINE','BUSY','OFFLINE')", name="status"),
        # Eligible idle runners, most recent heartbeat first (SPEC §6), in the order the claims read them: a claim
        # stops at the first eligible one instead of sorting them all.
        Index(
            "ix_runners_idle",
            text("last_heartbeat_at DESC NULLS LAST"),
            postgresql_where=idle(),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    machine_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # Bumped by regenerate-secret: every runner token carries the epoch it was issued under.
    token_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    type: Mapped[str | None] = mapped_column(String(100))
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=RunnerStatus.OFFLINE)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default="true")
    hostname: Mapped[str | None] = mapped_column(String(255))
    os: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(64))
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    memory_used_mb: Mapped[float | None] = mapped_column(Float)
    disk_percent: Mapped[float | None] = mapped_column(Float)
    disk_free_gb: Mapped[float | None] = mapped_column(Float)
    # No foreign key: the execution row is the truth and keeps `runner_id`; this column is its mirror.
    current_execution_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, unique=True)
    # What the runner declared at its last sign-in (docs/runner.md): the names of the activities it can run, its
    # capabilities, the digest of that declaration, and the catalogue entries of those activities the hub does
    # not have built in (a plugin's schemas, package and version).
    activities: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list, server_default="{}")
    capabilities: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list, server_default="{}")
    catalogue_digest: Mapped[str | None] = mapped_column(String(64))
    plugin_activities: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    created_at: Mapped[datetime] = created_at_column()


class RunnerMetric(Base):
    """One heartbeat's metrics, kept `EXEKRA_METRICS_RETENTION_DAYS` for capacity planning."""

    __tablename__ = "runner_metrics"
    __table_args__ = (
        Index("ix_runner_metrics_runner_id_ts", "runner_id", "ts"),
        Index("ix_runner_metrics_ts", "ts"),  # retention deletes the oldest rows
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    runner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("runners.id", ondelete="CASCADE"), nullable=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    memory_used_mb: Mapped[float | None] = mapped_column(Float)
    disk_percent: Mapped[float | None] = mapped_column(Float)
    disk_free_gb: Mapped[float | None] = mapped_column(Float)
