"""`LeanRoute`: a route declared like any FastAPI route, answered without FastAPI's request machinery.

The runner protocol is most of a hub's requests (every execution is a poll, a `start` and a `complete`, and
every runner heartbeats). FastAPI's handler costs about 0.1 ms of CPU per request before the endpoint runs:
the dependency solver, the body's content negotiation, the exit stacks (measured: bench/RESULTS.md). A route of
the runner protocol needs little of that: a JSON body parsed into one model, a few path and query parameters,
and dependencies on the request and the hub. `LeanRoute` keeps the route as FastAPI declares it (the
signature, the OpenAPI document, the routing, the error handlers) and replaces only the per-request handler
with one planned once per route:

- the dependencies are called in order, each with the request and the dependencies it declares (each called
  once per request), the router's own (`dependencies=`) first, for their effect; a dependency that raises (401,
  429) answers before the body is looked at; one that takes a `response` sets headers on it, which are added to
  the endpoint's answer (FastAPI left them out of the hub's retry, which returns its own `Response`, though it adds
  them in `tests/unit/test_lean_route.py`'s simpler application: not understood);
- path, query and header parameters are validated by FastAPI's own `request_params_to_args` (the same 422s);
- the body, when the route has one, is validated from its bytes by the model in one pass (`model_validate_json`),
  and must be sent as JSON (`application/json` or `+json`) as FastAPI's strict content type requires; a
  malformed body answers 400, an invalid one 422, in the hub's error shape;
- the endpoint returns its `Response` itself (`responses.documented`).

A route that declares anything else (cookies, a form, a dependency with parameters of its own) is refused when the
router is built, not served differently.

`LeanLane` serves routers of LeanRoutes beside the application's router: a request for one of them skips the
framework's layers between the hub's own middleware and the route (the error middleware, FastAPI's telemetry and
body-limit layers, the exception middleware, the exit-stack middleware, the router's scan, the route's two exit
stacks). Those layers are most of a heartbeat's CPU and of an open long poll's memory (bench/RESULTS.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from operator import attrgetter
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

Resolve = Callable[[Request, dict[Any, Any]], Awaitable[Any]]
Need = tuple[str | None, Resolve]  # a dependency's parameter name (None: the router's, called for its effect)
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


class LeanRoute(APIRoute):
    """An `APIRoute` whose requests are handled by a plan made once (see the module's docstring)."""

    handler: Handler

    def get_route_handler(self) -> Handler:
        self.handler = _handler(self)
        return self.handler


class LeanLane:
    """ASGI layer: answers the routes of `routers` (LeanRoutes, each with the full path) itself, and passes every
    other request on to `app`.

    A request is served here only when one of the routers' routes fully matches it (path and method); a path
    that matches none, or matches with another method, goes on to `app`, whose router answers it as before
    (404, 405). Each router must be included in the application as it is (no prefix or dependencies added by the
    inclusion), so that both ways serve a route the same (`tests/unit/test_hub_app.py` checks the hub's). An
    exception becomes an answer by the application's own handlers (`exception_handlers`, looked up as FastAPI's
    exception layer does); one without a handler is answered as Starlette's server-error layer answers it (the
    application's 500 handler, else a plain 500), through the layers around the lane, and raised on to the server,
    which logs it.
    """

    def __init__(
        self, app: ASGIApp, routers: Sequence[APIRouter], exception_handlers: dict[Any, ExceptionHandler]
    ) -> None:
        self.app = app
        self.lanes: list[tuple[str, list[LeanRoute]]] = []  # each router's prefix and routes
        for router in routers:
            routes = []
            for route in router.routes:
                if not isinstance(route, LeanRoute):
                    raise TypeError(f"LeanLane serves LeanRoutes only, not {route!r}")
                routes.append(route)
            self.lanes.append((_prefix(router), routes))
        self.exception_handlers = exception_handlers
        self._fixed = _fixed_paths(self.routes)

    def _route(self, scope: Scope) -> tuple[LeanRoute, Scope] | None:
        """The route that fully matches the request, with its child scope; None: not one of the lane's."""
        path = scope["path"]
        route = None if scope.get("root_path") else self._fixed.get((path, scope["method"]))
        if route is not None:  # as `route.matches` finds it, without its regex (nor a root path to take off)
            return route, {
                "endpoint": route.endpoint,
                "path_params": dict(scope.get("path_params", {})),
                "route": route,
            }
        for prefix, routes in self.lanes:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                for route in routes:
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        return route, child_scope
        return None

    @property
    def routes(self) -> list[LeanRoute]:
        """Every route the lane serves."""
        return [route for _, routes in self.lanes for route in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._route(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        route, child_scope = found
        scope.update(child_scope)  # the route, its endpoint and path parameters, as the router sets them
        request = Request(scope, receive, send)
        try:
            response = await route.handler(request)
        except Exception as exc:
            handle = self._handler_of(exc)
            if handle is not None:
                response = await _answer(handle, request, exc)
            else:  # as Starlette's server-error layer: the application's 500 handler or a plain 500, then raised
                fallback = self._server_error_handler()
                if fallback is None:
                    answer: Response = PlainTextResponse("Internal Server Error", status_code=500)
                else:
                    answer = await _answer(fallback, request, exc)
                await answer(scope, receive, send)
                raise
        await response(scope, receive, send)

    def _server_error_handler(self) -> ExceptionHandler | None:
        """The handler FastAPI gives its server-error layer: the application's for 500 or `Exception` (the one
        registered last, when both are)."""
        handlers = self.exception_handlers
        chosen = None
        for key, handler in handlers.items():
            if key in (500, Exception):
                chosen = handler
        return chosen

    def _handler_of(self, exc: Exception) -> ExceptionHandler | None:
        """The application's handler for `exc`: by status code for an HTTP exception, else by the nearest class.
        A handler for 500 or for `Exception` is not one of them: FastAPI gives those to its server-error layer."""
        handlers = self.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code != 500 and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None


async def _answer(handle: ExceptionHandler, request: Request, exc: Exception) -> Response:
    answer = handle(request, exc)
    return await answer if inspect.isawaitable(answer) else answer


def _fixed_paths(routes: Sequence[LeanRoute]) -> dict[tuple[str, str], LeanRoute]:
    """The routes without path parameters by path and method, each found by one lookup instead of a scan: for each
    method, unless a route before it (in the scan's order) takes the same requests, so that the lookup finds what the
    scan finds."""
    fixed: dict[tuple[str, str], LeanRoute] = {}
    for i, route in enumerate(routes):
        if route.param_convertors:
            continue
        for method in route.methods or ():
            earlier = (r for r in routes[:i] if r.path_regex.match(route.path) and method in (r.methods or ()))
            if next(earlier, None) is None:
                fixed[(route.path, method)] = route
    return fixed


def _prefix(router: APIRouter) -> str:
    """The path every route of `router` starts with, or is (its `prefix`, which must be set)."""
    if not router.prefix:
        raise TypeError("LeanLane needs a router with a prefix: it looks at no other path")
    return router.prefix


def _refuse_unsupported(dependant: Dependant, where: str) -> None:
    unsupported = [
        name
        for name, present in (
            ("cookie parameters", dependant.cookie_params),
            ("background tasks", dependant.background_tasks_param_name),
            ("security scopes", dependant.security_scopes_param_name),
            ("a websocket", dependant.websocket_param_name),
        )
        if present
    ]
    if unsupported:
        raise TypeError(f"LeanRoute {where} declares {', '.join(unsupported)}: use a plain APIRoute")


_SUB_RESPONSE = object()  # the request's cache key of the `Response` whose headers dependencies set


def _sub_response(cache: dict[Any, Any]) -> Response:
    """The request's `Response` for dependencies to set headers on (made on first use, as FastAPI makes it)."""
    response = cache.get(_SUB_RESPONSE)
    if response is None:
        response = cache[_SUB_RESPONSE] = Response()
        del response.headers["content-length"]
    return response


def _resolver(dependant: Dependant) -> Resolve:
    """Call a dependency with the request, the response it sets headers on and its own dependencies, once per
    request (`cache`)."""
    where = f"dependency {getattr(dependant.call, '__name__', dependant.call)}"
    _refuse_unsupported(dependant, where)
    if dependant.path_params or dependant.query_params or dependant.header_params or dependant.body_params:
        raise TypeError(f"LeanRoute {where} reads parameters of its own: use a plain APIRoute")
    call = dependant.call
    assert call is not None
    request_name = dependant.request_param_name
    response_name = dependant.response_param_name
    needs = _needs(dependant)

    async def resolve(request: Request, cache: dict[Any, Any]) -> Any:
        if call in cache:
            return cache[call]
        kwargs = await _call_needs(needs, request, cache)
        if request_name:
            kwargs[request_name] = request
        if response_name:
            kwargs[response_name] = _sub_response(cache)
        value = cache[call] = await call(**kwargs)
        return value

    return resolve


def _needs(dependant: Dependant) -> list[Need]:
    """The parameter name (None for the router's own) and resolver of each dependency `dependant` declares."""
    return [(sub.name, _resolver(sub)) for sub in dependant.dependencies]


async def _call_needs(needs: list[Need], request: Request, cache: dict[Any, Any]) -> dict[str, Any]:
    """Every dependency's value, by parameter name (the router's own are called for their effect)."""
    values = {}
    for name, need in needs:
        value = await need(request, cache)
        if name is not None:
            values[name] = value
    return values


def _body_reader(route: APIRoute) -> Callable[[Request], Awaitable[BaseModel]] | None:
    """What reads the route's JSON body into its model; None for a route without one."""
    dependant = route.dependant
    if not dependant.body_params:
        return None
    model = dependant.body_params[0].field_info.annotation
    if len(dependant.body_params) != 1 or not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"LeanRoute {route.path} must take its body as one pydantic model")

    async def read(request: Request) -> BaseModel:
        raw = await request.body()
        if not raw:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
            )
        if not _is_json(request.headers.get("content-type")):
            raise RequestValidationError(
                [
                    {
                        "type": "model_attributes_type",
                        "loc": ("body",),
                        "msg": "Input should be a valid dictionary or object to extract fields from",
                        "input": None,
                    }
                ]
            )
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None

    return read


ParamsReader = Callable[[Request, dict[str, Any]], list[Any]]


def _params_reader(params: Sequence[Any], received: Callable[[Request], Any]) -> ParamsReader | None:
    """What validates the route's parameters of one kind (FastAPI's `request_params_to_args`) into `values`,
    answering the errors; None for a route without any."""
    if not params:
        return None

    def read(request: Request, values: dict[str, Any]) -> list[Any]:
        found, wrong = request_params_to_args(params, received(request))
        values.update(found)
        return wrong

    return read


QUERIES_KEPT = 256  # a route's query strings whose values are kept (all forgotten when more come: see `_query_reader`)
_KEPT_TYPES = (str, int, float, bool, type(None))


def _query_reader(params: Sequence[Any]) -> ParamsReader | None:
    """`_params_reader` of the query parameters, whose values are kept by the raw query string: the runner's long
    poll sends the same one (`wait=30`) every time, and parsing and validating it was 30 % of a quiet renewal's time
    in the hub's own code (in-process profile: bench/RESULTS.md, 2026-12-06 16:43). Values that are not plain
    immutable scalars (a list) are not kept, nor are those of a query string that fails; past `QUERIES_KEPT`
    strings, every kept one is forgotten."""
    if not params:
        return None
    validate = _params_reader(params, attrgetter("query_params"))
    assert validate is not None
    kept: dict[bytes, dict[str, Any]] = {}

    def read(request: Request, values: dict[str, Any]) -> list[Any]:
        raw = request.scope["query_string"]
        found, wrong = kept.get(raw), []
        if found is None:
            found = {}
            wrong = validate(request, found)
            if not wrong and all(type(value) in _KEPT_TYPES for value in found.values()):
                if len(kept) >= QUERIES_KEPT:
                    kept.clear()
                kept[raw] = found
        values.update(found)
        return wrong

    return read


def _is_json(content_type: str | None) -> bool:
    """`application/json` or `application/…+json`, with or without parameters (FastAPI's strict rule)."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _handler(route: APIRoute) -> Handler:
    dependant = route.dependant
    _refuse_unsupported(dependant, route.path)
    if dependant.response_param_name:
        raise TypeError(f"LeanRoute {route.path} declares a response parameter: it returns its own response")
    endpoint = dependant.call
    assert endpoint is not None
    needs = _needs(dependant)
    request_name = dependant.request_param_name
    read_body = _body_reader(route)
    body_name = dependant.body_params[0].name if read_body is not None else None
    readers = [
        read
        for read in (
            _params_reader(dependant.path_params, attrgetter("path_params")),
            _query_reader(dependant.query_params),
            _params_reader(dependant.header_params, attrgetter("headers")),
        )
        if read is not None
    ]

    async def handle(request: Request) -> Response:
        cache: dict[Any, Any] = {}
        values = await _call_needs(needs, request, cache)
        if request_name:
            values[request_name] = request
        errors: list[Any] = []
        for read in readers:
            errors.extend(read(request, values))
        if errors:
            raise RequestValidationError(errors)
        if read_body is not None and body_name is not None:
            values[body_name] = await read_body(request)
        response = await endpoint(**values)
        if not isinstance(response, Response):
            raise TypeError(f"LeanRoute {route.path} must return a Response, not {type(response).__name__}")
        sub_response = cache.get(_SUB_RESPONSE)
        if sub_response is not None:
            response.headers.raw.extend(sub_response.headers.raw)
        return response

    return handle
