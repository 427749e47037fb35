"""`http.request`: one HTTP request with httpx; any status is a result, only transport errors fail."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
from pydantic import Field

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity
from exekra.workflow.errors import ActivityError

DEFAULT_TIMEOUT_SECONDS = 30.0


class RequestParams(Params):
    url: str
    """The URL."""
    method: str = "GET"
    """The HTTP method, in any case."""
    headers: dict[str, Any] = {}
    """Request headers (values sent as text)."""
    params: dict[str, Any] = {}
    """Query parameters."""
    json_body: Any = Field(None, alias="json")
    """A JSON payload (sets `Content-Type: application/json`); not with `body`."""
    body: str | None = None
    """A text payload; not with `json`."""
    timeout_seconds: float | None = Field(None, gt=0)
    """The request timeout (default: the node's timeout, else 30 s)."""


class RequestOutputs(Params):
    status: int
    """The response status code."""
    headers: dict[str, str]
    """Response headers, lower-case names; repeated headers joined by ", "."""
    text: str
    """The response body as text."""
    json_body: Any = Field(alias="json")
    """The body parsed as JSON, null when it is not JSON."""


@activity("http.request", category="Web", params=RequestParams, outputs=RequestOutputs)
def request(ctx: ActivityContext, params: RequestParams) -> dict[str, Any]:
    """Send one HTTP request and return the response, whatever its status.

    Redirects are followed; only transport errors (connection refused, timeout) fail the node.
    """
    method = params.method.upper()
    if params.json_body is not None and params.body is not None:
        raise ActivityError("give either param 'json' or param 'body', not both")
    payload: dict[str, Any] = {}
    if params.json_body is not None:
        payload["json"] = params.json_body
    elif params.body is not None:
        payload["content"] = params.body
    timeout = params.timeout_seconds or ctx.timeout or DEFAULT_TIMEOUT_SECONDS
    try:
        response = _client().request(
            method,
            params.url,
            headers={str(name): str(value) for name, value in params.headers.items()},
            params=params.params,
            timeout=timeout,
            **payload,
        )
    except httpx.HTTPError as exc:
        raise ActivityError(f"{method} {params.url}: {type(exc).__name__}: {exc}") from None
    return {
        "status": response.status_code,
        "headers": dict(response.headers.items()),
        "text": response.text,
        "json": _json_or_none(response.text),
    }


@functools.cache
def _client() -> httpx.Client:
    """One client per process: connections and the TLS setup (slow to build) are reused across nodes."""
    return httpx.Client(follow_redirects=True)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
