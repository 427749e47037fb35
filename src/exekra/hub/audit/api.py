"""Routes: the audit log (ADMIN)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from exekra.hub.audit import service
from exekra.hub.deps import AdminUser, HubDep, Paging

router = APIRouter(prefix="/api/audit", tags=["audit"])

Text = Annotated[str | None, Query(max_length=100)]


@router.get("")
async def list_audit(
    admin: AdminUser,
    hub: HubDep,
    paging: Paging,
    actor: Text = None,
    action: Text = None,
    entity_type: Annotated[str | None, Query(alias="entityType", max_length=50)] = None,
    entity_id: Annotated[str | None, Query(alias="entityId", max_length=100)] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Audit entries, newest first, filtered by actor id, action, entity and time."""
    f = service.AuditFilter(actor, action, entity_type, entity_id, since, until)
    async with hub.db.session() as session:
        entries, total = await service.list_entries(session, f, offset=paging.offset, limit=paging.limit)
    return {
        "entries": [service.to_api(e) for e in entries],
        "total": total,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": None,
    }
