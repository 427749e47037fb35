"""Routes: the audit log (ADMIN)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from exekra.hub.audit import service
from exekra.hub.audit.schemas import AuditPage
from exekra.hub.deps import AdminUser, HubDep, Paging
from exekra.hub.errors import BadRequest

router = APIRouter(prefix="/api/audit", tags=["audit"])

Text = Annotated[str | None, Query(max_length=100)]


def parse_cursor(cursor: str | None) -> int | None:
    """A `nextCursor` of a previous page (an entry id); BadRequest for anything else."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise BadRequest("cursor: not a cursor this hub gave out")
    return int(cursor)


@router.get("", response_model=AuditPage)
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
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    """Audit entries, newest first, filtered by actor id, action, entity and time.

    With `cursor` (the previous answer's `nextCursor`; empty for the first page) the page is read by keyset,
    fast at any depth, and `total` is counted up to 10,000 (`totalCapped` says when it stopped there).
    """
    f = service.AuditFilter(actor, action, entity_type, entity_id, since, until)
    async with hub.db.session() as session:
        if cursor is None:
            entries, total = await service.list_entries(session, f, offset=paging.offset, limit=paging.limit)
            next_cursor, capped = None, False
        else:
            entries, before = await service.entries_before(session, f, before=parse_cursor(cursor), limit=paging.limit)
            count = await service.count_entries(session, f)
            total, capped, next_cursor = count.value, count.capped, None if before is None else str(before)
    return {
        "entries": [service.to_api(e) for e in entries],
        "total": total,
        "totalCapped": capped,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": next_cursor,
    }
