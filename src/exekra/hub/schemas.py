"""Base classes of request bodies and answers (camelCase field names), and the shapes every domain shares:
a list's paging, a bare acknowledgement, the health answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Request body: fields are camelCase on the wire; unknown fields are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", str_max_length=100_000)


class ApiAnswer(BaseModel):
    """Answer: camelCase on the wire like a request body, without a request's input limits."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PageInfo(ApiAnswer):
    """What a list answer carries beside its items (`{"<plural>": [...], total, page, limit, nextCursor}`)."""

    total: int
    page: int
    limit: int
    next_cursor: str | None


class OkAnswer(ApiAnswer):
    """A change with nothing more to show."""

    ok: Literal[True]


class HealthAnswer(ApiAnswer):
    status: Literal["ok"]
    database: Literal["ok", "down"]
    queue: Literal["redis", "direct"]
    version: str
    instance: str
    leader: bool
