"""The audit log's API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exekra.hub.schemas import ApiAnswer


class AuditEntryOut(ApiAnswer):
    id: str
    ts: datetime
    actor_type: str
    actor_id: str | None
    action: str
    entity_type: str | None
    entity_id: str | None
    ip: str | None
    details: dict[str, Any] | None


class AuditPage(ApiAnswer):
    """`total` counts up to 10,000 matches (`totalCapped` when there are more)."""

    entries: list[AuditEntryOut]
    total: int
    total_capped: bool
    page: int
    limit: int
    next_cursor: str | None
