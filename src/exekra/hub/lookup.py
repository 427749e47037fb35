"""The one "get or 404" helper, and parsing of opaque IDs from paths."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.base import Base
from exekra.hub.errors import NotFound

ModelT = TypeVar("ModelT", bound=Base)


def parse_id(value: str | uuid.UUID, what: str) -> uuid.UUID:
    """An ID from a path or body; anything that is not one of ours is simply not found."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise NotFound(f"{what} {value} not found") from None


async def get_or_404(
    session: AsyncSession, model: type[ModelT], ident: str | uuid.UUID, what: str, *, for_update: bool = False
) -> ModelT:
    """Load a row by primary key or raise NotFound naming it."""
    key = parse_id(ident, what)
    row = await session.get(model, key, with_for_update=for_update)
    if row is None:
        raise NotFound(f"{what} {ident} not found")
    return row
