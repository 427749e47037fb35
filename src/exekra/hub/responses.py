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
    """Route options that name `model` as the answer in the OpenAPI document without validating each answer
    against it: for the hot path (runner protocol, execution create), whose answers are plain dicts rendered
    by orjson. Tests hold those dicts to the model. `also`: the route's other successful answers."""
    return {"response_model": None, "status_code": status, "responses": {status: {"model": model}, **(also or {})}}
