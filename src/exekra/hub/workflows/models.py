"""Workflow and version tables."""

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
    FetchedValue,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from exekra.db.base import Base, created_at_column, uuid_pk


class VersionState(StrEnum):
    """A version's state, in the API, the CLI and the dashboard alike."""

    DRAFT = "draft"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (
        CheckConstraint("priority BETWEEN 0 AND 9", name="priority"),
        CheckConstraint("max_concurrent >= 1", name="max_concurrent"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")
    runner_type: Mapped[str | None] = mapped_column(String(100))
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list, server_default="{}")
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=5, server_default="5")
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # `{attempts, backoffSeconds, backoffFactor, on}` as the API shows it (`schemas.RetryPolicy`); None: no retries.
    retry_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # At most this many of its executions ASSIGNED or RUNNING at once, per value of `concurrency_key` (a template
    # over the inputs, evaluated when an execution is created); None: no limit (`exekra.hub.concurrency`).
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    concurrency_key: Mapped[str | None] = mapped_column(String(500))
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    # Renewed by the database at every change of the workflow or of its versions (a sequence and the triggers of
    # migration 0022): a create made from what a hub process remembers of the workflow checks it
    # (`executions.creation`).
    revision: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default=text("nextval('workflow_revisions')"), server_onupdate=FetchedValue()
    )


class WorkflowVersion(Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "number"),
        Index("uq_workflow_versions_published", "workflow_id", unique=True, postgresql_where="published"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    # `json`, not `jsonb`: kept as written, keys in the author's order (migration 0005).
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    published: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at_column()

    @property
    def state(self) -> VersionState:
        """`published`: what new executions run; `superseded`: was published, then another version was (a later
        one, or an earlier one by a rollback); `draft`: never published."""
        if self.published:
            return VersionState.PUBLISHED
        return VersionState.SUPERSEDED if self.published_at is not None else VersionState.DRAFT


class ConcurrencySlots(Base):
    """The executions that hold the slots of one concurrency group (a workflow and a key value): written only by
    the claims and the releases in `exekra.hub.lifecycle`, so that a claim's check and its taking of a slot are
    one locked row (`exekra.hub.concurrency`)."""

    __tablename__ = "concurrency_slots"
    __table_args__ = (PrimaryKeyConstraint("workflow_id", "key"),)

    workflow_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(Text, nullable=False)
    holders: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), nullable=False, default=list, server_default="{}")
