"""What the hub tells its operators about itself: JSON log lines that carry the request's context, and the
Prometheus histograms and counters served at `/metrics` beside the live counts (`metrics.py`).

The figures belong to the process (several hubs in one test process add up): each hub process is one
Prometheus target. Each observation costs a few microseconds (one label lookup, one bucket search).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

REGISTRY = CollectorRegistry()

# Seconds: from a millisecond (a heartbeat) to a minute (a held long poll, a `?wait=` read).
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_QUICK_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)

REQUEST_SECONDS = Histogram(
    "exekra_http_request_duration_seconds",
    "Time to answer a request, by method, route template and status class (held requests included)",
    ["method", "route", "status"],
    buckets=_REQUEST_BUCKETS,
    registry=REGISTRY,
)
DISPATCH_SECONDS = Histogram(
    "exekra_dispatch_latency_seconds",
    "QUEUED → ASSIGNED: how long started executions waited for a runner",
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
PICKUP_SECONDS = Histogram(
    "exekra_pickup_latency_seconds",
    "ASSIGNED → RUNNING: from the assignment to the runner's start report",
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
FINISHED = Counter(
    "exekra_executions_finished", "Executions this hub process ended, by final status", ["status"], registry=REGISTRY
)
DB_STATEMENT_SECONDS = Histogram(
    "exekra_db_statement_duration_seconds",
    "Time of one database statement, from sending it to its answer",
    buckets=_QUICK_BUCKETS,
    registry=REGISTRY,
)
REDIS_COMMAND_SECONDS = Histogram(
    "exekra_redis_command_duration_seconds",
    "Time of one Redis command (a Lua script is one EVALSHA), by command",
    ["command"],
    buckets=_QUICK_BUCKETS,
    registry=REGISTRY,
)


@dataclass(slots=True)
class RequestContext:
    """The request a log line is written in, and who made it once known: set by `RequestTelemetry` (one context
    variable, set once per request; the caller is filled in on the same object), read by `JsonFormatter` and by
    the access line."""

    request_id: str
    caller: str | None = None


REQUEST: ContextVar[RequestContext | None] = ContextVar("exekra_request", default=None)

access_log = logging.getLogger("exekra.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def identify_caller(who: str) -> None:
    """Name the caller of the current request (`user:<id>`, `runner:<id>`) in its log lines."""
    current = REQUEST.get()
    if current is not None:
        current.caller = who


class RequestTelemetry:
    """Pure ASGI middleware: a request id (the client's `X-Request-ID` if it sent a short one, echoed back),
    the latency histogram by route template, and with `access_log` one line per request."""

    def __init__(self, app: ASGIApp, *, access: bool) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        context = RequestContext(request_id)
        token = REQUEST.set(context)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            _request_seconds(scope["method"], template, status).observe(elapsed)
            if self.access:
                execution = (scope.get("path_params") or {}).get("execution_id")
                access_log.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    redact_webhook_tokens(scope["path"]),
                    status,
                    elapsed * 1000,
                    extra={
                        "method": scope["method"],
                        "route": template,
                        "status": status,
                        "latencyMs": round(elapsed * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                        "requestId": request_id,
                        **({"caller": context.caller} if context.caller else {}),
                        **({"executionId": execution} if execution else {}),
                    },
                )
            REQUEST.reset(token)


_TOKEN_IN_PATH = re.compile(r"(/api/webhooks/)[^/?#\s\"]+")


def redact_webhook_tokens(text: str) -> str:
    """`text` with the token of every webhook URL in it replaced (for logs: the token is the credential)."""
    return _TOKEN_IN_PATH.sub(r"\1[redacted]", text)


_REQUEST_SERIES: dict[tuple[str, str, int], Any] = {}  # REQUEST_SECONDS's series by method, route, status class


def _request_seconds(method: str, route: str, status: int) -> Any:
    """REQUEST_SECONDS's series for this method, route template and status, found by one lookup once it is made
    (`labels` takes a lock and checks its labels on every call)."""
    key = (method, route, status // 100)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        series = _REQUEST_SERIES[key] = REQUEST_SECONDS.labels(method, route, f"{key[2]}xx")
    return series


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and 0 < len(value) <= 64 and value.isascii():
            return str(value.decode())
    # 64 random bits from the process's own generator (Python seeds it anew in a forked child): no system call per
    # request, as `secrets` makes; an id is a name for log lines, not a secret.
    return f"{random.getrandbits(64):016x}"


_EXTRA_FIELDS = ("method", "route", "status", "latencyMs", "client", "executionId")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `level`, `logger`, `message`, the request's `requestId` and `caller`
    when the line is written while answering one, the access line's fields, and `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # What the line carries itself (the access line), else the request it is written in.
        current = REQUEST.get()
        if (request_id := record.__dict__.get("requestId") or (current.request_id if current else None)) is not None:
            entry["requestId"] = request_id
        if (caller := record.__dict__.get("caller") or (current.caller if current else None)) is not None:
            entry["caller"] = caller
        for name in _EXTRA_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def time_statements(engine: AsyncEngine) -> None:
    """Observe every statement of `engine` in `DB_STATEMENT_SECONDS`."""
    sync_engine = engine.sync_engine
    clock, observe = time.perf_counter, DB_STATEMENT_SECONDS.observe

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _started(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
        context.exekra_started = clock()  # the statement's own execution context: no lookup, nothing to clean

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _ended(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
        observe(clock() - context.exekra_started)


def time_redis_commands(client: Any) -> None:
    """Observe every command of a `redis.asyncio.Redis` client in `REDIS_COMMAND_SECONDS`."""
    execute = client.execute_command

    async def timed(*args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await execute(*args, **options)
        finally:
            REDIS_COMMAND_SECONDS.labels(str(args[0]).upper() if args else "?").observe(time.perf_counter() - started)

    client.execute_command = timed
