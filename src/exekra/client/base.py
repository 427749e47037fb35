"""What the sync and async clients share: settings, headers, and turning an answer into a result."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import pydantic

from exekra import __version__
from exekra.client.calls import Call
from exekra.client.errors import ExekraClientError, HubUnreachable, error_for

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 30.0
# A log stream is quiet while an execution writes nothing: no read timeout, only a connect timeout.
STREAM_TIMEOUT = httpx.Timeout(None, connect=10.0)


def client_options(hub_url: str, token: str | None, timeout: float, verify: bool | str) -> dict[str, Any]:
    """Keyword arguments for `httpx.Client`/`httpx.AsyncClient`."""
    headers = {"User-Agent": f"exekra-client/{__version__}", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {"base_url": hub_url.rstrip("/"), "headers": headers, "timeout": timeout, "verify": verify}


def request_options(call: Call[Any]) -> dict[str, Any]:
    """Keyword arguments for `request()`/`stream()` of one call."""
    options: dict[str, Any] = {"params": call.query, "headers": call.headers}
    if call.json is not None:
        options["json"] = call.json
    return options


def unreachable(hub_url: str, exc: httpx.TransportError) -> HubUnreachable:
    return HubUnreachable(f"cannot reach the hub at {hub_url}: {exc or type(exc).__name__}")


def raise_for_error(response: httpx.Response) -> None:
    """Raise the typed error of an error answer (its body must have been read)."""
    if response.status_code < 400:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    raise error_for(response.status_code, body, dict(response.headers))


def finish(call: Call[T], response: httpx.Response) -> T:
    """The call's result from its answer, or the typed error."""
    raise_for_error(response)
    try:
        body = response.json() if response.content else None
        return call.parse(body)
    except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
        raise ExekraClientError(f"unexpected answer from {call.method} {call.path}: {exc}") from None
