"""`LeanRoute` (exekra/hub/routing.py): a route declared as FastAPI declares it, answered by a plan made once, with
the same validation answers as FastAPI's own handler and the hub's error shape; and `LeanLane`, which serves such
routes beside the application's router: every answer below is the same whichever way the request takes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Cookie, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from exekra.hub import routing
from exekra.hub.errors import NotAuthenticated, install_error_handlers
from exekra.hub.responses import ORJSONResponse
from exekra.hub.routing import LeanLane, LeanRoute
from exekra.hub.security_headers import SecurityHeaders

calls: list[str] = []


class Body(BaseModel):
    attempt: int = Field(ge=1)
    status: str


async def counted(request: Request) -> str:
    calls.append("counted")
    return request.headers.get("x-caller", "")


async def caller(request: Request, who: Annotated[str, Depends(counted)]) -> str:
    if who == "nobody":
        raise NotAuthenticated("who are you?")
    return who


Caller = Annotated[str, Depends(caller)]
Counted = Annotated[str, Depends(counted)]


class Boom(Exception):
    """Raised by a route; the application has no handler for it."""


async def stamped(request: Request, response: Response) -> None:
    """A router's own dependency (`dependencies=`): counted, and sets a header on the answer."""
    calls.append("stamped")
    response.headers["X-Stamp"] = request.headers.get("x-caller", "-")


def _app() -> tuple[FastAPI, list[APIRouter]]:
    router = APIRouter(prefix="/lean", route_class=LeanRoute)
    tagged = APIRouter(prefix="/tagged", route_class=LeanRoute, dependencies=[Depends(stamped)])

    @tagged.post("")  # at the router's prefix itself
    async def create(
        body: Body, key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=8)] = None
    ) -> ORJSONResponse:
        return ORJSONResponse({"key": key, "attempt": body.attempt}, status_code=201)

    @router.post("/items/{item_id}")
    async def post_item(item_id: str, body: Body, who: Caller, again: Counted) -> ORJSONResponse:
        return ORJSONResponse({"item": item_id, "attempt": body.attempt, "who": who, "again": again})

    @router.get("/wait")
    async def wait(who: Caller, request: Request, seconds: Annotated[float, Query(ge=0, le=30)] = 0) -> ORJSONResponse:
        return ORJSONResponse({"seconds": seconds, "path": request.url.path, "who": who})

    @router.get("/boom")
    async def boom() -> ORJSONResponse:
        raise Boom("not handled")

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(tagged)

    @app.get("/lean-not/{anything}")
    async def beside(anything: str) -> dict[str, str]:  # shares the lane's prefix as a string, not as a path
        return {"served": "router"}

    return app, [router, tagged]


class Recorded:
    """An ASGI app that records the paths it was asked for and passes them on."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture(params=["router", "lane"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    calls.clear()
    app, routers = _app()
    served = app if request.param == "router" else LeanLane(app, routers, app.exception_handlers)
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://lean") as c:
        yield c


async def test_parameters_body_and_dependencies_reach_the_endpoint_each_dependency_once(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/lean/items/a1", json={"attempt": 2, "status": "OK"}, headers={"x-caller": "r1"})
    assert r.status_code == 200
    assert r.json() == {"item": "a1", "attempt": 2, "who": "r1", "again": "r1"}
    assert calls == ["counted"]  # declared twice (by the route and by `caller`), called once
    r = await client.get("/lean/wait", params={"seconds": "2.5"}, headers={"x-caller": "r1"})
    assert r.json() == {"seconds": 2.5, "path": "/lean/wait", "who": "r1"}
    assert (await client.get("/lean/wait", headers={"x-caller": "r1"})).json()["seconds"] == 0  # the default


async def test_invalid_input_answers_as_fastapi_would_in_the_hub_error_shape(client: httpx.AsyncClient) -> None:
    ok = {"x-caller": "r1"}
    r = await client.post("/lean/items/a1", json={"attempt": 0, "status": "OK"}, headers=ok)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed"
    assert r.json()["error"]["details"][0]["loc"] == ["body", "attempt"]
    r = await client.post("/lean/items/a1", content=b'{"attempt": ', headers={**ok, "content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_request")
    r = await client.post("/lean/items/a1", headers=ok)  # no body
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["body"]
    r = await client.post(
        "/lean/items/a1", content=b'{"attempt": 1, "status": "OK"}', headers={**ok, "content-type": "text/plain"}
    )
    assert r.status_code == 422  # JSON must be sent as JSON
    r = await client.post(
        "/lean/items/a1",
        content=b'{"attempt": 1, "status": "OK"}',
        headers={**ok, "content-type": "application/vnd.exekra+json; charset=utf-8"},
    )
    assert r.status_code == 200
    r = await client.get("/lean/wait", params={"seconds": "31"}, headers=ok)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["query", "seconds"]
    r = await client.get("/lean/wait", params={"seconds": "soon"}, headers=ok)
    assert r.status_code == 422


async def test_a_refusing_dependency_answers_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    r = await client.post("/lean/items/a1", content=b"not json", headers={"x-caller": "nobody"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "who are you?"


async def test_header_parameters_and_the_routers_own_dependencies(client: httpx.AsyncClient) -> None:
    r = await client.post("/tagged", json={"attempt": 1, "status": "OK"}, headers={"Idempotency-Key": "k1"})
    assert (r.status_code, r.json()) == (201, {"key": "k1", "attempt": 1})
    assert calls == ["stamped"]
    assert (await client.post("/tagged", json={"attempt": 1, "status": "OK"})).json()["key"] is None
    r = await client.post("/tagged", json={"attempt": 1, "status": "OK"}, headers={"Idempotency-Key": "123456789"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["header", "Idempotency-Key"]
    assert (await client.get("/tagged")).status_code == 405  # the lane passes a wrong method on


async def test_headers_a_dependency_sets_are_added_to_the_answer(client: httpx.AsyncClient) -> None:
    """As FastAPI adds them to the response the endpoint returns (the rate limit's)."""
    r = await client.post("/tagged", json={"attempt": 1, "status": "OK"}, headers={"x-caller": "r9"})
    assert (r.status_code, r.headers["x-stamp"]) == (201, "r9")


async def reads_query(limit: int = 1) -> int:
    return limit


async def with_query_dependency(limit: Annotated[int, Depends(reads_query)]) -> ORJSONResponse:
    return ORJSONResponse({})  # module level: the annotations are strings, resolved in this module's namespace


async def reads_header(x_thing: Annotated[str, Header()]) -> str:
    return x_thing


async def with_header_dependency(thing: Annotated[str, Depends(reads_header)]) -> ORJSONResponse:
    return ORJSONResponse({})


def test_a_route_declaring_what_the_plan_does_not_cover_is_refused_when_built() -> None:
    router = APIRouter(route_class=LeanRoute)

    async def with_cookie(session: Annotated[str, Cookie()]) -> ORJSONResponse:
        return ORJSONResponse({})

    with pytest.raises(TypeError, match="cookie parameters"):
        router.add_api_route("/c", with_cookie)

    async def with_response(response: Response) -> ORJSONResponse:
        return ORJSONResponse({})

    with pytest.raises(TypeError, match="response parameter"):
        router.add_api_route("/r", with_response)

    with pytest.raises(TypeError, match="parameters of its own"):
        router.add_api_route("/dh", with_header_dependency)

    with pytest.raises(TypeError, match="parameters of its own"):
        router.add_api_route("/d", with_query_dependency)


async def test_an_endpoint_that_returns_no_response_is_a_programming_error() -> None:
    router = APIRouter(route_class=LeanRoute)

    async def plain() -> dict[str, int]:
        return {"a": 1}

    router.add_api_route("/plain", plain)
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://lean") as c:
        with pytest.raises(TypeError, match="must return a Response"):
            await c.get("/plain")


async def test_the_lane_answers_its_routes_itself_and_passes_every_other_request_on() -> None:
    app, routers = _app()
    passed = Recorded(app)
    lane = LeanLane(passed, routers, app.exception_handlers)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lane), base_url="http://lean") as c:
        assert (await c.get("/lean/wait", headers={"x-caller": "r1"})).status_code == 200
        assert (await c.get("/lean/wait", headers={"x-caller": "nobody"})).status_code == 401  # its error, here
        assert passed.paths == []
        assert (await c.post("/lean/wait", headers={"x-caller": "r1"})).status_code == 405  # the router's answer
        assert (await c.get("/lean/nothing")).status_code == 404
        assert (await c.get("/lean-not/x")).json() == {"served": "router"}
        assert (await c.post("/taggedx", json={"attempt": 1, "status": "OK"})).status_code == 404
    assert passed.paths == ["/lean/wait", "/lean/nothing", "/lean-not/x", "/taggedx"]


async def test_the_lane_marks_the_route_it_served_for_the_layers_around_it() -> None:
    app, routers = _app()
    seen: list[tuple[str, dict[str, str]]] = []
    lane = LeanLane(app, routers, app.exception_handlers)

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:  # as RequestTelemetry reads them
        await lane(scope, receive, send)
        seen.append((scope["route"].path, scope["path_params"]))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://lean") as c:
        await c.post("/lean/items/a7", json={"attempt": 1, "status": "OK"}, headers={"x-caller": "r1"})
    assert seen == [("/lean/items/{item_id}", {"item_id": "a7"})]


def _both_ways(app: FastAPI, routers: list[APIRouter]) -> list[tuple[str, Any]]:
    return [("router", app), ("lane", LeanLane(app, routers, app.exception_handlers))]


async def test_an_exception_without_a_handler_is_answered_500_and_raised_on_to_the_server() -> None:
    app, routers = _app()
    for way, served in _both_ways(app, routers):
        quiet = httpx.ASGITransport(app=served, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=quiet, base_url="http://lean") as c:
            r = await c.get("/lean/boom")
            assert (r.status_code, r.text) == (500, "Internal Server Error"), way
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://lean") as c:
            with pytest.raises(Boom):
                await c.get("/lean/boom")


async def test_the_applications_handlers_answer_the_same_whichever_way() -> None:
    app, routers = _app()

    @app.exception_handler(418)
    async def teapot(_: Request, exc: Exception) -> ORJSONResponse:
        return ORJSONResponse({"by": "status"}, status_code=418)

    @app.exception_handler(Exception)
    async def anything(_: Request, exc: Exception) -> ORJSONResponse:
        return ORJSONResponse({"by": "server error handler"}, status_code=500)

    router = routers[0]

    @router.get("/teapot")
    async def brew() -> ORJSONResponse:
        raise HTTPException(418, "short and stout")

    app.include_router(router)  # the new route, for the router's way
    for way, served in _both_ways(app, routers):
        transport = httpx.ASGITransport(app=served, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://lean") as c:
            assert (await c.get("/lean/teapot")).json() == {"by": "status"}, way
            r = await c.get("/lean/boom")  # no handler of its class: the server-error layer's, then raised
            assert (r.status_code, r.json()) == (500, {"by": "server error handler"}), way
            r = await c.get("/lean/wait", headers={"x-caller": "nobody"})  # a handler by class, not `Exception`'s
            assert (r.status_code, r.json()["error"]["message"]) == (401, "who are you?"), way
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://lean") as c:
            with pytest.raises(Boom):  # answered by `Exception`'s handler, and still raised for the server's log
                await c.get("/lean/boom")


def test_the_lane_takes_only_lean_routes_under_a_prefix() -> None:
    app, _ = _app()
    plain = APIRouter(prefix="/plain")
    plain.add_api_route("/x", with_query_dependency)
    with pytest.raises(TypeError, match="LeanRoutes only"):
        LeanLane(app, [plain], {})
    with pytest.raises(TypeError, match="prefix"):
        LeanLane(app, [APIRouter(route_class=LeanRoute)], {})


async def test_the_lanes_500_passes_the_layers_around_it() -> None:
    app, routers = _app()
    served = SecurityHeaders(LeanLane(app, routers, app.exception_handlers))
    transport = httpx.ASGITransport(app=served, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://lean") as c:
        r = await c.get("/lean/boom")
    assert (r.status_code, r.headers["x-content-type-options"]) == (500, "nosniff")


async def test_a_query_string_is_validated_once_and_its_values_kept_unless_they_fail_or_are_a_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lane answers a query string it has validated before from what it kept, with the same values; a string
    that fails is validated (and refused) every time, values that are a list are never kept, and past
    `QUERIES_KEPT` strings every kept one is forgotten."""
    validated: list[str] = []
    real = routing.request_params_to_args

    def counting(fields: Any, received: Any) -> Any:
        validated.append(str(received))
        return real(fields, received)

    monkeypatch.setattr(routing, "request_params_to_args", counting)
    monkeypatch.setattr(routing, "QUERIES_KEPT", 3)
    router = APIRouter(prefix="/q", route_class=LeanRoute)

    @router.get("/one")
    async def one(seconds: Annotated[float, Query(ge=0, le=30)] = 0) -> ORJSONResponse:
        return ORJSONResponse({"seconds": seconds})

    @router.get("/many")
    async def many(tag: Annotated[list[str], Query()]) -> ORJSONResponse:
        tag.append("seen")  # an endpoint may change what it is given
        return ORJSONResponse({"tag": tag})

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    lane = LeanLane(app, [router], app.exception_handlers)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lane), base_url="http://lean") as c:
        for _ in range(3):
            assert (await c.get("/q/one?seconds=2.5")).json() == {"seconds": 2.5}
            assert (await c.get("/q/one?seconds=31")).status_code == 422
            assert (await c.get("/q/many?tag=a&tag=b")).json() == {"tag": ["a", "b", "seen"]}
        assert validated.count("seconds=2.5") == 1
        assert validated.count("seconds=31") == 3
        assert validated.count("tag=a&tag=b") == 3
        for n in range(3):  # past the bound: every kept string is forgotten, the answers stay the same
            assert (await c.get(f"/q/one?seconds={n}")).json() == {"seconds": n}
        assert (await c.get("/q/one?seconds=2.5")).json() == {"seconds": 2.5}
        assert validated.count("seconds=2.5") == 2


async def test_a_path_without_parameters_is_found_as_the_routes_scan_finds_it() -> None:
    """A route without path parameters is found by its path alone, unless a route before it takes the same
    requests: the scan's first match wins, as in the application's router; another method is the router's 405."""
    router = APIRouter(prefix="/p", route_class=LeanRoute)

    @router.get("/{name}")
    async def named(name: str) -> ORJSONResponse:
        return ORJSONResponse({"named": name})

    @router.get("/fixed")  # never served: the route above takes it first
    async def shadowed() -> ORJSONResponse:
        return ORJSONResponse({"fixed": True})

    @router.post("/fixed")
    async def fixed() -> ORJSONResponse:
        return ORJSONResponse({"posted": True})

    app = FastAPI()
    app.include_router(router)
    for way, served in _both_ways(app, [router]):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://lean") as c:
            assert (await c.get("/p/fixed")).json() == {"named": "fixed"}, way
            assert (await c.post("/p/fixed")).json() == {"posted": True}, way
            assert (await c.put("/p/fixed")).status_code == 405, way
            assert (await c.get("/p/other")).json() == {"named": "other"}, way
