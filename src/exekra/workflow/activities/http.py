"""`http.request`: one HTTP request with httpx; any status is a result, only transport errors fail."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx

from exekra.workflow.activities.context import ActivityContext, param
from exekra.workflow.errors import ActivityError

DEFAULT_TIMEOUT_SECONDS = 30.0


def request(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Send `method` (GET) to `url` with `headers`, query `params` and a `json` or `body` payload.

    Outputs `status`, `headers` (lower-case names; repeated headers joined by ", "), `text` and
    `json` (the parsed body, null when it is not JSON). Redirects are followed. The timeout is
    `timeoutSeconds`, else the node's timeout, else 30 s.
    """
    method = param(params, "method", str, "GET").upper()
    url = param(params, "url", str)
    if params.get("json") is not None and params.get("body") is not None:
        raise ActivityError("give either param 'json' or param 'body', not both")
    payload: dict[str, Any] = {}
    if params.get("json") is not None:
        payload["json"] = params["json"]
    elif params.get("body") is not None:
        payload["content"] = param(params, "body", str)
    timeout = param(params, "timeoutSeconds", float, ctx.timeout or DEFAULT_TIMEOUT_SECONDS)
    try:
        response = _client().request(
            method,
            url,
            headers={str(name): str(value) for name, value in param(params, "headers", dict, {}).items()},
            params=param(params, "params", dict, {}),
            timeout=timeout,
            **payload,
        )
    except httpx.HTTPError as exc:
        raise ActivityError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
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
