"""The one "get or 404" helper, parsing of opaque IDs from paths, and id prefixes (short ids)."""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from exekra.db.base import Base
from exekra.hub.errors import NotFound, ValidationFailed

MIN_PREFIX_DIGITS = 6

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


@dataclass(frozen=True)
class IdPrefix:
    """The ids that start with some hex digits: a range of the primary key's index (uuids sort as their hex)."""

    low: uuid.UUID
    high: uuid.UUID

    @classmethod
    def parse(cls, text: str) -> IdPrefix:
        """`cae1a064`, `CAE1A0`, `cae1a064-12…`: 6 to 32 hex digits, dashes ignored."""
        digits = text.replace("-", "").lower()
        if not MIN_PREFIX_DIGITS <= len(digits) <= 32 or not set(digits) <= set(string.hexdigits.lower()):
            raise ValidationFailed(f"idPrefix: {MIN_PREFIX_DIGITS} to 32 hex digits of an id, not {text!r}")
        return cls(uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f")))

    def matches(self, column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
        return column.between(self.low, self.high)


def id_prefix(
    text: Annotated[
        str | None,
        Query(alias="idPrefix", max_length=64, description="only ids starting with these 6 to 32 hex digits"),
    ] = None,
) -> IdPrefix | None:
    """The `idPrefix` query parameter of list endpoints."""
    return IdPrefix.parse(text) if text is not None else None


IdPrefixQuery = Annotated[IdPrefix | None, Depends(id_prefix)]
