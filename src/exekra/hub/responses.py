"""Fast JSON responses (orjson) used by every route, and how a route documents its answer."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import JSONResponse


class ORJSONResponse(JSONResponse):
    """JSON response rendered with orjson (UUIDs and datetimes natively, UTC ISO-8601)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)


def documented(
    model: type[BaseModel], status: int = 200, *, also: dict[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Route options for the hot path (the runner protocol, an execution's create, read and retry, webhooks): `model`
    is named as the answer in the OpenAPI document, but no answer is validated against it. Such a route returns its
    answer as an `ORJSONResponse` (a returned dict would go through FastAPI's slower `jsonable_encoder`); the
    integration tests hold every answer to its model. Other routes declare `response_model=`. `also`: the route's
    other successful answers."""
    return {"response_model": None, "status_code": status, "responses": {status: {"model": model}, **(also or {})}}
