"""Writing and reading the append-only audit log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.raw import SELF_COMMITTING, Statements
from exekra.db.session import Database
from exekra.hub.audit.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who did something: a user, a runner, a trigger or the hub itself."""

    type: str
    id: str | None = None
    ip: str | None = None

    @property
    def user_id(self) -> uuid.UUID | None:
        """The user's id when a user acted (what a row's `created_by` keeps), else None."""
        return uuid.UUID(self.id) if self.type == "USER" and self.id else None


SYSTEM = Actor("SYSTEM")

COUNT_CAP = 10_000
"""Counting stops here: past it a filter's total shows as `10,000+` (a count of a million rows is slow)."""

_INSERT = insert(AuditEntry)  # built once
_RECORDED = "exekra.audit"


def record(
    session: Statements,
    actor: Actor,
    action: str,
    entity_type: str | None = None,
    entity_id: object = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one audit entry on the caller's transaction: it is written just before that transaction
    commits (`exekra.hub.effects`), so it commits with the change it records, and never without it."""
    if session.info.get(SELF_COMMITTING):
        raise RuntimeError(f"audit entry {action!r} on a self-committing statement: use Database.statements()")
    session.info.setdefault(_RECORDED, []).append(entry(actor, action, entity_type, entity_id, details))


def entry(
    actor: Actor,
    action: str,
    entity_type: str | None = None,
    entity_id: object = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The columns of one audit entry: what `record` writes at commit, and what a statement that writes its own
    entry (`lifecycle.insert_queued`) inserts."""
    return {
        "actor_type": actor.type,
        "actor_id": actor.id,
        "ip": actor.ip,
        "action": action,
        "entity_type": entity_type,
        "entity_id": None if entity_id is None else str(entity_id),
        "details": details,
    }


async def write_recorded(session: Statements) -> None:
    """Write the entries recorded on this transaction, in one statement (the commit hook calls it)."""
    entries = session.info.pop(_RECORDED, None)
    if entries:
        await session.execute(_INSERT, entries)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def filtered(query: Select[Any], f: AuditFilter) -> Select[Any]:
    """Apply the audit filters to a query over `AuditEntry`."""
    if f.actor:
        query = query.where(AuditEntry.actor_id == f.actor)
    if f.action:
        query = query.where(AuditEntry.action == f.action)
    if f.entity_type:
        query = query.where(AuditEntry.entity_type == f.entity_type)
    if f.entity_id:
        query = query.where(AuditEntry.entity_id == f.entity_id)
    if f.since:
        query = query.where(AuditEntry.ts >= f.since)
    if f.until:
        query = query.where(AuditEntry.ts < f.until)
    return query


@dataclass(frozen=True)
class Count:
    """A total that stops counting at `COUNT_CAP` (`capped` then)."""

    value: int
    capped: bool


async def count_entries(session: AsyncSession, f: AuditFilter, cap: int = COUNT_CAP) -> Count:
    """How many entries match, reading at most `cap + 1` index entries."""
    limited = filtered(select(AuditEntry.id), f).limit(cap + 1).subquery()
    counted = int((await session.execute(select(func.count()).select_from(limited))).scalar_one())
    return Count(min(counted, cap), counted > cap)


async def list_entries(
    session: AsyncSession, f: AuditFilter, *, offset: int, limit: int
) -> tuple[list[AuditEntry], int]:
    """A page of audit entries, newest first, with the total count."""
    total = (await session.execute(filtered(select(func.count()).select_from(AuditEntry), f))).scalar_one()
    rows = await session.execute(
        filtered(select(AuditEntry), f).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    )
    return list(rows.scalars()), int(total)


async def entries_before(
    session: AsyncSession, f: AuditFilter, *, before: int | None, limit: int
) -> tuple[list[AuditEntry], int | None]:
    """A keyset page: the newest `limit` entries with an id below `before` (all when None), and the cursor
    of the next page (None on the last). Reads only the rows it returns, however long the log."""
    query = filtered(select(AuditEntry), f)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list((await session.execute(query.order_by(AuditEntry.id.desc()).limit(limit + 1))).scalars())
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


async def stream_entries(db: Database, f: AuditFilter, batch: int = 1000) -> AsyncIterator[list[AuditEntry]]:
    """Every matching entry, newest first, in keyset batches of `batch` (each in its own short read)."""
    before: int | None = None
    while True:
        async with db.session() as session:
            rows, before = await entries_before(session, f, before=before, limit=batch)
        if rows:
            yield rows
        if before is None:
            return


async def signed_in_from(db: Database, user_id: str, ip: str) -> bool:
    """Whether the user ever signed in from this address, as far as the audit log still remembers (`auth.login`;
    walks the user's own entries on `ix_audit_log_actor_id_id`)."""
    query = (
        select(AuditEntry.id)
        .where(AuditEntry.actor_id == user_id, AuditEntry.action == "auth.login", AuditEntry.ip == ip)
        .limit(1)
    )
    async with db.session() as session:
        return (await session.execute(query)).first() is not None


def to_api(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "ts": entry.ts,
        "actorType": entry.actor_type,
        "actorId": entry.actor_id,
        "action": entry.action,
        "entityType": entry.entity_type,
        "entityId": entry.entity_id,
        "ip": entry.ip,
        "details": entry.details,
    }
