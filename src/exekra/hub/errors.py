"""The error hierarchy and its mapping to the JSON error shape `{"error": {code, message, details}}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from exekra.db.raw import sqlstate
from exekra.hub.responses import ORJSONResponse

TRANSIENT_ERRORS = (SQLAlchemyError, RedisError, OSError, TimeoutError)
"""What PostgreSQL or Redis raise when they are down, restarting or slow: background work that meets one
logs it and tries again later (requests answer 503 for a lost database, see `install_error_handlers`)."""


class ExekraError(Exception):
    """Base of every error the API reports; subclasses fix the status and code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers


class BadRequest(ExekraError):
    status_code, code = 400, "bad_request"


class NotAuthenticated(ExekraError):
    status_code, code = 401, "not_authenticated"


class Forbidden(ExekraError):
    status_code, code = 403, "forbidden"


class NotFound(ExekraError):
    status_code, code = 404, "not_found"


class Conflict(ExekraError):
    status_code, code = 409, "conflict"


class SubworkflowRefused(Conflict):
    """A sub-workflow that may not start: too deep, a cycle, no runner for it, or its parent is stopping."""

    code = "subworkflow_refused"


class PayloadTooLarge(ExekraError):
    status_code, code = 413, "payload_too_large"


class ValidationFailed(ExekraError):
    status_code, code = 422, "validation_failed"


class LicenseInvalid(ValidationFailed):
    """A licence file that is malformed, not signed by the trusted key, or already expired."""

    code = "license_invalid"


class LicenseHubMismatch(ValidationFailed):
    code = "license_hub_mismatch"


class LicenseEmailMismatch(ValidationFailed):
    code = "license_email_mismatch"


class LicenseLimit(Forbidden):
    """The installed licence allows no more runners (its cap is reached, or it has expired)."""

    code = "license_limit"


class RateLimited(ExekraError):
    status_code, code = 429, "rate_limited"


class NotReady(ExekraError):
    status_code, code = 503, "not_ready"


_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "not_ready",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The JSON error shape: every 4xx and 5xx answer of the API has this body (`error_response` renders it)."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Refused: `error.code` says why (SPEC §7)"},
    "5XX": {"model": ErrorBody, "description": "The hub cannot answer now (503 `not_ready`: retry shortly)"},
}
"""Attached to every operation of the app: the OpenAPI document names the error body of every answer."""


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """The one place that renders the JSON error shape."""
    body = {"error": {"code": code, "message": message, "details": details}}
    return ORJSONResponse(body, status_code=status, headers=headers)


def _validation_details(exc: RequestValidationError) -> tuple[int, str, list[dict[str, Any]]]:
    problems = []
    malformed = False
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            malformed = True
        problems.append({"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")})
    if malformed:
        return 400, "Malformed JSON body", problems
    first = problems[0] if problems else {"loc": [], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    return 422, f"{where}: {first['msg']}" if where else str(first["msg"]), problems


# PostgreSQL cannot store a NUL character in text or JSON (untranslatable_character, character_not_in_repertoire):
# text a client sent, found only where the database refuses it. Its answer is the client's error, not ours.
_UNSTORABLE_TEXT = {"22P05", "22021"}
_UNSTORABLE_TEXT_MESSAGE = "Text may not contain the NUL character (\\u0000)"
# A deadlock or serialization failure: the database undid this transaction for a concurrent one, so the same
# request retried a moment later succeeds (the runner agent and the SDK retry a 503 by themselves).
_RETRY_NOW = {"40P01", "40001"}


def _database_unavailable() -> Response:
    """The database connection broke (a restart or failover): the client may retry shortly."""
    return error_response(503, "not_ready", "The database is unavailable, retry shortly", headers={"Retry-After": "2"})


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception type to the JSON error shape."""

    @app.exception_handler(ExekraError)
    async def _exekra_error(_: Request, exc: ExekraError) -> Response:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        status, message, problems = _validation_details(exc)
        return error_response(status, "bad_request" if status == 400 else "validation_failed", message, problems)

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> Response:
        pgcode = sqlstate(exc)
        if pgcode in _UNSTORABLE_TEXT:
            return error_response(400, "bad_request", _UNSTORABLE_TEXT_MESSAGE)
        if pgcode in _RETRY_NOW:
            message = "A concurrent change to the same rows won, retry"
            return error_response(503, "not_ready", message, headers={"Retry-After": "1"})
        if not exc.connection_invalidated:
            raise exc
        return _database_unavailable()

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(_: Request, exc: PoolTimeout) -> Response:
        # Every pooled connection stayed busy for the pool timeout: an overloaded hub, not a broken request.
        return error_response(
            503,
            "not_ready",
            "The hub is overloaded (no database connection came free in time), retry shortly",
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(ConnectionError)
    async def _connection_error(_: Request, exc: ConnectionError) -> Response:
        return _database_unavailable()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))
