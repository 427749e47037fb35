"""create_app(): routers, middleware, error handlers, and the lifespan that starts dispatch."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from exekra import __version__
from exekra.config import Settings
from exekra.db.locks import database_now
from exekra.db.migrate import ensure_migrated
from exekra.db.session import Database
from exekra.hub import observability
from exekra.hub.alerts.worker import AlertWorker
from exekra.hub.auth import owners
from exekra.hub.auth.security import RunnerTokens
from exekra.hub.collector import Collector
from exekra.hub.context import Hub
from exekra.hub.credentials.reseal import reseal_at_start
from exekra.hub.dashboard.routes import install_dashboard
from exekra.hub.deps import HubDep, rate_limit
from exekra.hub.dispatch.switching import SwitchingDispatcher
from exekra.hub.effects import EffectApplier, Transition
from exekra.hub.errors import ERROR_RESPONSES, error_response, install_error_handlers
from exekra.hub.executions.api import hot_router as executions_hot_router
from exekra.hub.executions.service import ExecutionService
from exekra.hub.instance import instance_id
from exekra.hub.leader import LeaderLease
from exekra.hub.license.service import Licensing
from exekra.hub.listener import Listener
from exekra.hub.maintenance import Maintenance
from exekra.hub.ratelimit import RateLimiter
from exekra.hub.responses import ORJSONResponse
from exekra.hub.routing import LeanLane
from exekra.hub.runners.protocol import router as protocol_router
from exekra.hub.schemas import HealthAnswer
from exekra.hub.security_headers import SecurityHeaders
from exekra.hub.triggers.scheduler import Scheduler

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


# A runner's artifact upload is a file, not a JSON document: its own limit (`EXEKRA_ARTIFACT_MAX_BYTES`).
ARTIFACT_UPLOAD_PATH = re.compile(r"^/api/runner/executions/[^/]+/artifacts$")


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` (or the limit of a path in `overrides`) with 413, by
    Content-Length or, for a chunked body, while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = tuple(overrides)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The next layer's coroutine, returned rather than awaited, unless a chunked body must be counted: no frame
        of this layer lives as long as the request (a held long poll)."""
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        limit = next((n for pattern, n in self.overrides if pattern.match(scope["path"])), self.max_bytes)
        length, chunked = None, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and length.isdigit() and int(length) > limit:
            return _too_large(limit, scope, receive, send)
        if chunked:
            return self._counted(limit, scope, receive, send)
        # The server reads a body of declared length up to that length, and a request with neither header has none:
        # only a chunked body needs counting as it streams.
        return self.app(scope, receive, send)

    async def _counted(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge(413, _too_large_message(limit))
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(limit, scope, receive, send)


def _too_large_message(limit: int) -> str:
    return f"Request body is larger than {limit} bytes"


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(413, "payload_too_large", _too_large_message(limit))
    await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """An HTTP error, so that FastAPI's body parsing passes it on as 413 instead of turning it into a 400."""


class HubApp(FastAPI):
    """FastAPI, with the hub's own middleware (the *edge*: every middleware added to it) outermost and the runner
    protocol and the executions' hot routes (create, read) served beside the router by a `LeanLane`, inside the
    edge: such a request passes the edge and the lane, nothing else. Every other request goes on from the lane
    through FastAPI's layers (the server-error layer, the exception handlers, the router) as in any FastAPI
    application."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.edge: list[Middleware] = []
        self._traced: bool | None = None  # whether FastAPI's own OpenTelemetry hooks are on: asked once

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        """As Starlette's: the middleware added last is the outermost; all of them go around the lane."""
        if self.middleware_stack is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        self.edge.insert(0, Middleware(middleware_class, *args, **kwargs))

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        """As FastAPI's, except that an HTTP request is handed to the middleware stack and the stack's coroutine
        returned, not awaited: no frame of FastAPI's or Starlette's waits on every request (0.9 KB of a held long
        poll). Lifespan and websocket scopes, and every scope when FastAPI's own OpenTelemetry hooks are on (the hub
        does not turn them on; an OpenTelemetry provider set up before the first request does), go through FastAPI's
        `__call__`. FastAPI asks on every request (three look-ups of the environment); this process asks at its first
        request. Marked a coroutine function below, so that a server guessing the ASGI version from it (uvicorn)
        still finds ASGI 3."""
        if scope["type"] != "http":
            return super().__call__(scope, receive, send)
        if self._traced is None:
            telemetry = getattr(self, "_native_telemetry", None)
            self._traced = telemetry is not None and telemetry.enabled()
        if self._traced:
            return super().__call__(scope, receive, send)
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        return self.middleware_stack(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        lean = (protocol_router, executions_hot_router)
        app: ASGIApp = LeanLane(super().build_middleware_stack(), lean, self.exception_handlers)
        for cls, args, kwargs in reversed(self.edge):
            app = cls(app, *args, **kwargs)
        return app


# What `asyncio.iscoroutinefunction` (uvicorn's guess of the ASGI version) and `inspect.iscoroutinefunction` look
# for: `inspect.markcoroutinefunction` from Python 3.12, the marker asyncio reads on 3.11.
if hasattr(inspect, "markcoroutinefunction"):
    inspect.markcoroutinefunction(HubApp.__call__)
else:  # Python 3.11
    HubApp.__call__._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]


def build_hub(settings: Settings) -> Hub:
    """The hub's shared objects for one process, each built once: the database and the effect applier its
    transactions commit through, the `LISTEN` connection, the dispatcher, and the execution service."""
    effects = EffectApplier()
    db = Database(settings, effects)
    observability.time_statements(db.engine)
    effects.on_end(_count_end)
    secret_key = settings.resolve_secret_key()
    listener = Listener(settings.asyncpg_dsn)
    dispatcher = SwitchingDispatcher(db, settings, listener)
    effects.bind(dispatcher)
    licensing = Licensing.from_settings(db, settings, secret_key)
    licensing.subscribe(listener)
    # Tokens resolved lately are forgotten whenever a token or a user changes, in any process (`auth.owners`).
    listener.subscribe(owners.CHANNEL, owners.token_owners.forget, on_connect=owners.token_owners.forget)
    executions = ExecutionService(
        db, settings, dispatcher, listener, secret_key=secret_key, dedup=dispatcher if settings.redis_url else None
    )
    effects.on_end(executions.stop_children_of)
    alerts = AlertWorker(db, settings, secret_key)
    effects.on_end(alerts.execution_ended)
    return Hub(
        settings=settings,
        db=db,
        effects=effects,
        listener=listener,
        dispatcher=dispatcher,
        executions=executions,
        limiter=RateLimiter(settings.redis_url, settings.redis_timeout_seconds),
        runner_tokens=RunnerTokens(secret_key, settings.runner_token_ttl_seconds),
        licensing=licensing,
        secret_key=secret_key,
        alerts=alerts,
    )


async def _count_end(transition: Transition) -> None:
    observability.FINISHED.labels(transition.status or transition.rule).inc()


def create_app(settings: Settings, *, owns_process: bool = False) -> HubApp:
    """The hub's ASGI application.

    `owns_process` (the `exekra hub` process, each of its workers; not a hub that a test runs in its own process):
    on SIGINT or SIGTERM the held long polls answer 204 and the log streams and held reads end at once, before the
    server waits for open connections, so that a shutdown takes about a second plus whatever real work is in
    flight; and the process's garbage collector follows the hub's policy (`collector`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url
        await ensure_migrated(settings.database_url)
        await asyncio.to_thread(settings.resolve_secret_key)  # a passphrase's scrypt, off the event loop (cached)
        hub = build_hub(settings)
        await reseal_at_start(hub.db, settings)
        hub.started_at = time.time()
        app.state.hub = hub
        await hub.listener.start()
        await hub.licensing.reload()
        await hub.dispatcher.start()
        await hub.executions.liveness.start()
        app.state.maintenance = maintenance = Maintenance(hub, started_at=await database_now(hub.db))
        hub.leader = _leader_lease(hub, maintenance)
        await hub.leader.start()
        if settings.alerts_enabled:
            await hub.alerts.start()
        restore = _close_on_signal(hub) if owns_process else None
        collector = Collector() if owns_process else None
        if collector is not None:
            collector.start()
        try:
            yield
        finally:
            if collector is not None:
                await collector.stop()
            if restore is not None:
                restore()
            hub.executions.close()
            await hub.alerts.stop()
            await hub.leader.stop()
            await hub.dispatcher.stop()
            await hub.executions.liveness.stop()
            await hub.listener.stop()
            await hub.db.dispose()

    app = HubApp(
        title="Exekra Hub API",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        responses=ERROR_RESPONSES,
    )
    install_error_handlers(app)
    _include_routers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        overrides=[(ARTIFACT_UPLOAD_PATH, settings.artifact_max_bytes)],
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(observability.RequestTelemetry, access=settings.access_log)
    if settings.trusted_proxies:
        # Outermost: the client address and scheme every later layer reads (`deps.client_ip`, HSTS, cookies)
        # are the forwarded ones only for requests from these proxies. uvicorn's own copy is off (server.py).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def _leader_lease(hub: Hub, maintenance: Maintenance) -> LeaderLease:
    """The lease whose holder runs the singleton work: the maintenance loops and the scheduler."""
    settings = hub.settings
    scheduler = Scheduler(
        hub.executions, interval=settings.scheduler_interval_seconds, keep_fires_days=settings.retention_days
    )

    async def lead() -> None:
        await maintenance.start()
        await scheduler.start()

    async def step_down() -> None:
        await scheduler.stop()
        await maintenance.stop()

    instance = instance_id(settings.instance_prefix)
    return LeaderLease(settings.asyncpg_dsn, instance, settings.maintenance_interval_seconds, lead, step_down)


def _close_on_signal(hub: Hub) -> Callable[[], None]:
    """Chain a handler before the server's own SIGINT/SIGTERM handlers (uvicorn installs them before the
    lifespan starts) that closes the hub's held requests; returns what restores the server's handlers."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(hub.executions.close)
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _include_routers(app: FastAPI) -> None:
    from exekra.hub.activities.api import router as activities_router
    from exekra.hub.alerts.api import router as alerts_router
    from exekra.hub.artifacts.api import router as artifacts_router
    from exekra.hub.audit.api import router as audit_router
    from exekra.hub.auth.api import router as auth_router
    from exekra.hub.credentials.api import router as credentials_router
    from exekra.hub.executions.api import router as executions_router
    from exekra.hub.license.api import router as license_router
    from exekra.hub.metrics import router as metrics_router
    from exekra.hub.runners.api import router as runners_router
    from exekra.hub.stats.api import router as stats_router
    from exekra.hub.triggers.api import router as triggers_router
    from exekra.hub.triggers.webhooks import router as webhooks_router
    from exekra.hub.users.api import router as users_router
    from exekra.hub.workflows.api import router as workflows_router

    # The runner protocol and the executions' hot routes are served by the lane (`HubApp`); the router has them for
    # the OpenAPI document and for what the lane passes on (a wrong method: 405). Routes are matched in order:
    # executions, most of the rest of the traffic, come first.
    app.include_router(protocol_router)
    app.include_router(executions_hot_router)  # rate limited by its own dependency
    limited = [Depends(rate_limit)]
    for router in (
        executions_router,
        artifacts_router,
        auth_router,
        users_router,
        workflows_router,
        runners_router,
        credentials_router,
        audit_router,
        triggers_router,
        alerts_router,
        stats_router,
        activities_router,
        license_router,
    ):
        app.include_router(router, dependencies=limited)
    app.include_router(webhooks_router)
    app.include_router(_system_router())
    app.include_router(metrics_router)
    install_dashboard(app)


def _system_router() -> APIRouter:
    router = APIRouter(tags=["system"])

    @router.get("/api/health", response_model=HealthAnswer)
    async def health(hub: HubDep) -> dict[str, Any]:
        """Liveness: database reachability, the active queue mode, which process answered (`instance`) and
        whether it holds the leader lease (`leader`: it runs the maintenance loop, the purge and the scheduler)."""
        database = "ok"
        try:
            async with hub.db.session() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            database = "down"
        return {
            "status": "ok",
            "database": database,
            "queue": hub.dispatcher.mode,
            "version": __version__,
            "instance": instance_id(hub.settings.instance_prefix),
            "leader": hub.leader is not None and hub.leader.leading,
        }

    @router.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="Exekra Hub API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to swagger.io: the page stays on this hub
        )

    return router
