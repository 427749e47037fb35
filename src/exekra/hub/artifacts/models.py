"""Artifact tables: one row per file an execution attached, its bytes in chunks beside it.

By default the bytes live in PostgreSQL (`bytea`, `CHUNK_BYTES` per row) rather than in large objects or
files: they are deleted with their execution by the foreign keys, whoever deletes it, every hub process sees
them without a shared folder, and a database backup holds them. With `EXEKRA_ARTIFACT_DIR` they are files
(`exekra.hub.artifacts.files`) and the row names its file.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from exekra.db.base import Base, created_at_column, uuid_pk

CHUNK_BYTES = 1024 * 1024


class Artifact(Base):
    __tablename__ = "execution_artifacts"
    __mapper_args__ = {"eager_defaults": True}
    # A runner that retries an upload whose answer it lost sends the same name again: it replaces the first.
    __table_args__ = (UniqueConstraint("execution_id", "attempt", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    execution_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    node_id: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    # Its file under `EXEKRA_ARTIFACT_DIR` (`<execution id>/<artifact id>`); null: its bytes are chunk rows.
    location: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at_column()


class ArtifactChunk(Base):
    __tablename__ = "execution_artifact_chunks"
    __table_args__ = (PrimaryKeyConstraint("artifact_id", "seq"),)

    artifact_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("execution_artifacts.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
