"""The audit log (ADMIN): filter by actor, action, entity and time, keyset pages, CSV export."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from exekra.hub.audit import service
from exekra.hub.audit.api import parse_cursor
from exekra.hub.audit.models import AuditEntry
from exekra.hub.dashboard.forms import parse_moment
from exekra.hub.dashboard.web import PageRoute, render
from exekra.hub.deps import AdminUser, get_hub
from exekra.hub.users.models import User

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50
COUNT_CAP = 1_000  # the page says "1,000+" past this: counting further costs a heap read per entry with a time filter
ENTITY_TYPES = ("workflow", "execution", "trigger", "credential", "runner", "user", "token", "license")
ENTITY_PAGES = {
    "workflow": "/workflows/",
    "execution": "/executions/",
    "trigger": "/triggers/",
    "credential": "/credentials/",
    "runner": "/runners/",
}
CSV_COLUMNS = ("id", "ts", "actorType", "actorId", "actorEmail", "action", "entityType", "entityId", "ip", "details")


@dataclass(frozen=True)
class Filters:
    """The page's filter form as typed (shown again) and as an `AuditFilter`."""

    actor: str = ""
    action: str = ""
    entity_type: str = ""
    entity_id: str = ""
    since: str = ""
    until: str = ""

    def query(self) -> dict[str, str]:
        return {
            "actor": self.actor,
            "action": self.action,
            "entityType": self.entity_type,
            "entityId": self.entity_id,
            "since": self.since,
            "until": self.until,
        }


def _filters(request: Request) -> Filters:
    q = request.query_params
    return Filters(
        actor=q.get("actor", "").strip()[:320],
        action=q.get("action", "").strip()[:100],
        entity_type=q.get("entityType", "").strip()[:50],
        entity_id=q.get("entityId", "").strip()[:100],
        since=q.get("since", "").strip()[:40],
        until=q.get("until", "").strip()[:40],
    )


async def _audit_filter(request: Request, typed: Filters) -> service.AuditFilter:
    """The filter to apply; an actor given as an email means that user's id."""
    actor = typed.actor or None
    if actor and "@" in actor:
        async with get_hub(request).db.session() as session:
            found = (
                await session.execute(select(User.id).where(func.lower(User.email) == actor.lower()))
            ).scalar_one_or_none()
        actor = str(found) if found else actor
    return service.AuditFilter(
        actor=actor,
        action=typed.action or None,
        entity_type=typed.entity_type or None,
        entity_id=typed.entity_id or None,
        since=parse_moment(typed.since),
        until=parse_moment(typed.until),
    )


async def _emails(request: Request, entries: list[AuditEntry]) -> dict[str, str]:
    """The email of each user that acted in `entries` (one query)."""
    ids = set()
    for entry in entries:
        if entry.actor_type == "USER" and entry.actor_id:
            try:
                ids.add(uuid.UUID(entry.actor_id))
            except ValueError:
                continue
    if not ids:
        return {}
    async with get_hub(request).db.session() as session:
        rows = await session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {str(row.id): row.email for row in rows}


def entity_link(entry: AuditEntry) -> str | None:
    prefix = ENTITY_PAGES.get(entry.entity_type or "")
    return f"{prefix}{entry.entity_id}" if prefix and entry.entity_id else None


@router.get("/audit")
async def audit_page(request: Request, admin: AdminUser) -> Response:
    typed = _filters(request)
    f = await _audit_filter(request, typed)
    cursor = parse_cursor(request.query_params.get("cursor"))
    async with get_hub(request).db.session() as session:
        entries, before = await service.entries_before(session, f, before=cursor, limit=PAGE_SIZE)
        total = await service.count_entries(session, f, COUNT_CAP)
    context: dict[str, Any] = {
        "entries": entries,
        "emails": await _emails(request, entries),
        "total": total,
        "filters": typed,
        "query": {k: v for k, v in typed.query().items() if v},
        "next_cursor": before,
        "first_page": cursor is None,
        "entity_types": ENTITY_TYPES,
        "entity_link": entity_link,
        "details_text": lambda details: orjson.dumps(details).decode() if details else "",
    }
    return render(request, "audit.html", context, section="audit")


@router.get("/audit.csv")
async def audit_csv(request: Request, admin: AdminUser) -> Response:
    """Every entry the filters match, newest first, as CSV (streamed in keyset batches)."""
    hub = get_hub(request)
    f = await _audit_filter(request, _filters(request))

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        async for batch in service.stream_entries(hub.db, f):
            emails = await _emails(request, batch)
            for e in batch:
                writer.writerow(
                    (
                        e.id,
                        e.ts.astimezone(UTC).isoformat(),
                        e.actor_type,
                        e.actor_id or "",
                        emails.get(e.actor_id or "", ""),
                        e.action,
                        e.entity_type or "",
                        e.entity_id or "",
                        e.ip or "",
                        orjson.dumps(e.details).decode() if e.details else "",
                    )
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="exekra-audit-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )
