"""The installation: one row holding this hub's id and its installed licence (encrypted like credentials)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from exekra.db.base import Base


class Installation(Base):
    __tablename__ = "installation"
    __table_args__ = (
        CheckConstraint("singleton", name="singleton"),
        CheckConstraint("license_status IN ('active','expired','community')", name="license_status"),
    )

    singleton: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=True)
    hub_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    # nonce + AES-GCM ciphertext of the `.lic` text (`exekra.hub.credentials.crypto`); None: community mode
    license_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    license_installed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the status last recorded in the audit log (the revalidation records each change once)
    license_status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="community")
