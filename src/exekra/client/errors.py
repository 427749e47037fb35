"""Errors the SDK raises: one class per API error status, plus `HubUnreachable` for transport failures.

Every API error carries the hub's `{"error": {code, message, details}}` as `code`, `message` and `details`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ExekraClientError(Exception):
    """Base of every error raised by `exekra.client`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HubUnreachable(ExekraClientError):
    """The hub could not be reached (connection refused, DNS, TLS, timeout)."""


class AmbiguousId(ExekraClientError):
    """A short ID is the start of several IDs (or a name is shared); `matches` lists them (the first ten)."""

    def __init__(
        self, kind: str, ref: str, matches: list[str], total: int | None = None, *, by_name: bool = False
    ) -> None:
        count = max(total or 0, len(matches))
        listed = ", ".join(matches) + (f" and {count - len(matches)} more" if count > len(matches) else "")
        if by_name:
            message = f"{count} {kind}s are named {ref!r}: {listed}; use the ID"
        else:
            message = f"{ref} is the start of {count} {kind} IDs: {listed}; give more characters"
        super().__init__(message)
        self.kind = kind
        self.ref = ref
        self.matches = matches


class ApiError(ExekraClientError):
    """The hub answered with an error status."""

    status_code = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str = "error",
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        self.code = code
        self.details = details
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"


class BadRequest(ApiError):
    status_code = 400


class NotAuthenticated(ApiError):
    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


@dataclass(frozen=True)
class Problem:
    """One problem of a refused request: its message and, for a workflow definition, where it is
    (`node` id, 1-based `edge` index, `param` path inside the node's params)."""

    message: str
    node: str | None = None
    edge: int | None = None
    param: str | None = None

    def __str__(self) -> str:
        return self.message


def _problem(item: Any) -> Problem:
    if isinstance(item, dict):
        edge = item.get("edge")
        return Problem(
            str(item.get("message", "")),
            node=None if item.get("node") is None else str(item["node"]),
            edge=edge if isinstance(edge, int) and not isinstance(edge, bool) else None,
            param=None if item.get("param") is None else str(item["param"]),
        )
    return Problem(str(item))  # an input problem of `POST /api/executions` (or an older hub) is plain text


class ValidationFailed(ApiError):
    status_code = 422

    @property
    def problems(self) -> list[Problem]:
        """Every problem the hub listed in `details.problems` (empty when it listed none)."""
        listed = self.details.get("problems") if isinstance(self.details, dict) else None
        return [_problem(item) for item in listed] if isinstance(listed, list) else []


class RateLimited(ApiError):
    status_code = 429

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, from the `Retry-After` header."""
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class NotReady(ApiError):
    status_code = 503


class ServerError(ApiError):
    """Any other 5xx answer."""

    status_code = 500


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        NotAuthenticated,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        ValidationFailed,
        RateLimited,
        NotReady,
    )
}


def error_for(status_code: int, body: Any, headers: dict[str, str]) -> ApiError:
    """The typed error for an error answer (the API's error shape, or whatever else came back)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or f"HTTP {status_code}")
        code, details = str(error.get("code") or "error"), error.get("details")
    else:  # not an Exekra hub's answer (a proxy, another server): say what came back
        message, code, details = f"the hub answered HTTP {status_code} {_reason(status_code)}".rstrip(), "error", body
    cls = ERRORS_BY_STATUS.get(status_code, ServerError if status_code >= 500 else ApiError)
    return cls(message, status_code=status_code, code=code, details=details, headers=headers)


def _reason(status_code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""
