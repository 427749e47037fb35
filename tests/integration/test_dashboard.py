"""Dashboard pages in process: sign-in and first run, CSRF, every page for every role, role-aware controls."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import httpx
import pytest

from exekra.hub.context import Hub

from .conftest import ADMIN_EMAIL, PASSWORD, SIMPLE_DEFINITION, UNKNOWN_ID, ClientFactory
from .protocol import ProtocolRunner, csrf_of, post_form, publish_workflow

ROLES = ("ADMIN", "DEVELOPER", "OPERATOR")


@dataclass
class World:
    workflow_id: str
    execution_id: str
    runner_id: str


@pytest.fixture
async def world(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> World:
    """A published workflow with inputs, a runner that ran one execution with logs."""
    definition = {**SIMPLE_DEFINITION, "inputs": {"name": {"type": "string", "default": "x"}}}
    workflow_id = await publish_workflow(admin, "hello", definition)
    runner = await ProtocolRunner.register(admin, client, "runner-1", labels=["a"])
    await runner.auth()
    await runner.heartbeat(cpuPercent=42.0)
    r = await admin.post("/api/executions", json={"workflowId": workflow_id})
    execution_id = r.json()["execution"]["id"]
    held = (await runner.poll(wait=5)).json()["execution"]  # the dispatcher may be claiming it right now
    await runner.start(execution_id, held["attempt"])
    await runner.logs(execution_id, held["attempt"], "first line", "second line")
    assert runner.runner_id
    return World(workflow_id, execution_id, runner.runner_id)


def pages_of(w: World) -> list[str]:
    return [
        "/",
        "/overview/live",
        "/overview/live?hours=1",
        "/runners",
        "/runners/rows",
        f"/runners/{w.runner_id}",
        f"/runners/{w.runner_id}/live",
        f"/runners/{w.runner_id}?hours=24",
        "/workflows",
        "/workflows?q=hel",
        f"/workflows/{w.workflow_id}",
        f"/workflows/{w.workflow_id}?version=1",
        "/executions",
        "/executions?status=RUNNING",
        f"/executions?workflow={w.workflow_id}&runner={w.runner_id}&since=2000-01-01T00:00",
        f"/executions/{w.execution_id}",
        f"/executions/{w.execution_id}/live?after=1",
    ]


# --- signing in -----------------------------------------------------------------------------------------


async def test_a_signed_out_visit_goes_to_sign_in_and_remembers_the_page(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    r = await client.get("/runners?status=ONLINE")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Frunners%3Fstatus%3DONLINE"
    r = await client.get("/overview/live", headers={"HX-Request": "true"})
    assert (r.status_code, r.headers["hx-redirect"]) == (204, "/login?next=%2Foverview%2Flive")
    r = await client.get("/login?next=/runners")
    assert r.status_code == 200
    assert 'name="next" value="/runners"' in r.text


async def test_without_any_user_sign_in_leads_to_the_first_run_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/login")
    assert (r.status_code, r.headers["location"]) == (303, "/bootstrap")
    r = await client.get("/bootstrap")
    assert r.status_code == 200
    assert "This hub has no users yet" in r.text


async def test_the_first_run_page_creates_an_admin_and_signs_them_in_with_the_api_cookie(
    client: httpx.AsyncClient, hub_app: object
) -> None:
    r = await post_form(
        client,
        "/bootstrap",
        {"email": "first@example.com", "name": "First", "password": PASSWORD, "confirm": PASSWORD},
        page="/bootstrap",
    )
    assert (r.status_code, r.headers["location"]) == (303, "/")
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("token="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=604800" in cookie and "Path=/" in cookie
    me = (await client.get("/api/auth/me")).json()["user"]
    assert (me["email"], me["role"]) == ("first@example.com", "ADMIN")
    page = await client.get("/")
    assert "You are the administrator" in page.text and 'href="/users"' in page.text
    assert (await client.get("/bootstrap")).headers["location"] == "/login"

    transport = httpx.ASGITransport(app=hub_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        token = csrf_of((await other.get("/login")).text)
        r = await other.post(
            "/bootstrap", data={"email": "second@example.com", "password": PASSWORD, "confirm": PASSWORD, "csrf": token}
        )
        assert (r.status_code, r.headers["location"]) == (303, "/login")


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [
        ("short", "short", "password: String should have at least 8 characters"),
        (PASSWORD, PASSWORD + "x", "password: the two passwords differ"),
    ],
)
async def test_first_run_form_problems_are_shown_in_place(
    client: httpx.AsyncClient, password: str, confirm: str, message: str
) -> None:
    r = await post_form(
        client, "/bootstrap", {"email": "a@example.com", "password": password, "confirm": confirm}, page="/bootstrap"
    )
    assert r.status_code == 422
    assert message in r.text
    assert 'value="a@example.com"' in r.text


async def test_signing_in_with_the_form_sets_the_cookie_the_api_accepts(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    r = await post_form(
        client, "/login", {"email": ADMIN_EMAIL, "password": PASSWORD, "next": "/executions"}, page="/login"
    )
    assert (r.status_code, r.headers["location"]) == (303, "/executions")
    assert (await client.get("/api/auth/me")).status_code == 200
    assert (await client.get("/executions")).status_code == 200


async def test_a_wrong_password_is_reported_on_the_form(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    r = await post_form(client, "/login", {"email": ADMIN_EMAIL, "password": "wrong-password"}, page="/login")
    assert r.status_code == 401
    assert "Wrong email or password" in r.text
    assert "token=" not in r.headers.get("set-cookie", "")


async def test_the_sign_in_form_goes_through_the_same_limits_as_the_api(
    admin: httpx.AsyncClient,
    client: httpx.AsyncClient,
    hub: Hub,
    strict_login_limit: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub.settings, "login_checks_in_flight", 100)
    answers = await asyncio.gather(
        *(
            post_form(client, "/login", {"email": ADMIN_EMAIL, "password": f"guess-{i}"}, page="/login")
            for i in range(10)
        )
    )
    assert sorted(r.status_code for r in answers) == [401] * strict_login_limit + [429] * (10 - strict_login_limit)
    assert "Too many failed sign-ins" in next(r.text for r in answers if r.status_code == 429)
    # The API's sign-in of the same account is refused too: one budget.
    r = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert r.status_code == 429


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"]
)
async def test_after_sign_in_only_pages_of_this_hub_are_followed(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, target: str
) -> None:
    r = await post_form(client, "/login", {"email": ADMIN_EMAIL, "password": PASSWORD, "next": target}, page="/login")
    assert (r.status_code, r.headers["location"]) == (303, "/")


async def test_signing_out_ends_the_session(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    await post_form(client, "/login", {"email": ADMIN_EMAIL, "password": PASSWORD}, page="/login")
    token = client.cookies["token"]
    r = await post_form(client, "/logout", {})
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert 'token=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    r = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


# --- CSRF -------------------------------------------------------------------------------------------------


async def test_form_posts_need_the_token_of_the_same_session_and_origin(make_client: ClientFactory) -> None:
    admin = await make_client("ADMIN")
    other_admin = await make_client("ADMIN")
    own_token = csrf_of((await admin.get("/runners")).text)
    foreign_token = csrf_of((await other_admin.get("/runners")).text)
    assert own_token != foreign_token

    refused = [
        await admin.post("/runners", data={"name": "r-none"}),
        await admin.post("/runners", data={"name": "r-foreign", "csrf": foreign_token}),
        await admin.post(
            "/runners", data={"name": "r-origin", "csrf": own_token}, headers={"Origin": "https://evil.example"}
        ),
    ]
    for r in refused:
        assert r.status_code == 403
        assert "did not come from this hub" in r.text
    assert (await admin.get("/api/runners")).json()["total"] == 0

    r = await admin.post("/runners", data={"name": "r-ok", "csrf": own_token}, headers={"Origin": "http://testserver"})
    assert r.status_code == 201
    r = await admin.post("/runners", data={"name": "r-header"}, headers={"X-CSRF-Token": own_token})
    assert r.status_code == 201


async def test_the_sign_in_form_is_bound_to_the_browser_that_loaded_it(
    admin: httpx.AsyncClient, hub_app: object
) -> None:
    transport = httpx.ASGITransport(app=hub_app)  # type: ignore[arg-type]
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as victim,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as attacker,
    ):
        token = csrf_of((await attacker.get("/login")).text)
        await victim.get("/login")
        r = await victim.post("/login", data={"email": ADMIN_EMAIL, "password": PASSWORD, "csrf": token})
        assert r.status_code == 403
        r = await attacker.post("/login", data={"email": ADMIN_EMAIL, "password": PASSWORD, "csrf": token})
        assert r.status_code == 303


# --- pages and roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_every_page_renders_for_every_role(make_client: ClientFactory, world: World, role: str) -> None:
    c = await make_client(role)
    for path in pages_of(world):
        r = await c.get(path)
        assert r.status_code == 200, f"{role} {path}: {r.status_code} {r.text[:300]}"
        assert r.headers["content-type"].startswith("text/html")
    users = await c.get("/users")
    editor = await c.get(f"/workflows/{world.workflow_id}/edit")
    creator = await c.get("/workflows/new")
    assert users.status_code == (200 if role == "ADMIN" else 403)
    assert editor.status_code == creator.status_code == (403 if role == "OPERATOR" else 200)
    if role != "ADMIN":
        assert "may not do this" in users.text


@pytest.mark.parametrize("role", ROLES)
async def test_navigation_and_controls_follow_the_role(make_client: ClientFactory, world: World, role: str) -> None:
    c = await make_client(role)
    overview = (await c.get("/")).text
    runners = (await c.get("/runners")).text
    runner = (await c.get(f"/runners/{world.runner_id}")).text
    workflow = (await c.get(f"/workflows/{world.workflow_id}")).text
    workflows = (await c.get("/workflows")).text
    admin, developer = role == "ADMIN", role in ("ADMIN", "DEVELOPER")
    assert ('href="/users"' in overview) is admin
    assert ("Register a runner" in runners) is admin
    for control in ("Regenerate secret", "/disable", "/delete", 'action="/runners/' + world.runner_id + '/edit"'):
        assert (control in runner) is admin, control
    assert ("Edit JSON" in workflow) is developer
    assert ("New workflow" in workflows) is developer
    assert "Run version 1" in workflow  # every role may run
    assert f'<span class="role role-{role.lower()}">{role}</span>' in overview


@pytest.mark.parametrize("role", ["DEVELOPER", "OPERATOR"])
async def test_admin_actions_are_refused_server_side_for_other_roles(
    make_client: ClientFactory, world: World, role: str
) -> None:
    c = await make_client(role)
    token = csrf_of((await c.get("/runners")).text)
    base = f"/runners/{world.runner_id}"
    for path in (
        "/runners",
        f"{base}/edit",
        f"{base}/disable",
        f"{base}/enable",
        f"{base}/regenerate-secret",
        f"{base}/delete",
        "/users",
    ):
        r = await c.post(
            path, data={"csrf": token, "name": "x", "labels": "b", "email": "x@example.com", "password": PASSWORD}
        )
        assert r.status_code == 403, path
    runner = (await c.get(f"/api/runners/{world.runner_id}")).json()["runner"]
    assert (runner["name"], runner["labels"], runner["enabled"]) == ("runner-1", ["a"], True)


async def test_operators_may_not_change_workflows_but_may_run_them(make_client: ClientFactory, world: World) -> None:
    c = await make_client("OPERATOR")
    token = csrf_of((await c.get("/workflows")).text)
    wid = world.workflow_id
    for path in (f"/workflows/{wid}/publish", f"/workflows/{wid}/edit", "/workflows/new"):
        r = await c.post(path, data={"csrf": token, "definition": "{}", "name": "x"})
        assert r.status_code == 403, path
    r = await c.post(f"/workflows/{wid}/run", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"].startswith("/executions/")


async def test_a_fresh_hub_shows_empty_states(admin: httpx.AsyncClient) -> None:
    expectations = {
        "/": ["No failed executions", "No runners yet"],
        "/runners": ["No runners.", "Register one above"],
        "/workflows": ["No workflows yet", "/workflows/new"],
        "/executions": ["No executions yet"],
        "/workflows?q=nothing": ["No workflow matches"],
        "/executions?status=FAILED": ["No execution matches these filters"],
    }
    for path, texts in expectations.items():
        page = (await admin.get(path)).text
        for text in texts:
            assert text in page, (path, text)


@pytest.mark.parametrize(
    "path",
    [
        f"/runners/{UNKNOWN_ID}",
        "/workflows/not-an-id",
        f"/executions/{UNKNOWN_ID}",
        f"/executions/{UNKNOWN_ID}/live",
    ],
)
async def test_unknown_things_get_a_not_found_page(admin: httpx.AsyncClient, path: str) -> None:
    r = await admin.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "not found" in r.text


async def test_bad_filters_are_explained_not_crashed_on(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/executions?since=yesterday")
    assert r.status_code == 422 and "not a time: yesterday" in r.text
    r = await admin.get("/executions?cursor=forged")
    assert r.status_code == 400 and "Invalid cursor" in r.text
    r = await admin.get("/runners?page=x")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")


LISTS_WITH_PAGES = ["/runners", "/runners/rows", "/workflows", "/triggers", "/credentials", "/users"]


@pytest.mark.parametrize("path", LISTS_WITH_PAGES)
@pytest.mark.parametrize("page", ["0", "-3", "1000001", "99999999999999999999999"])
async def test_a_page_number_out_of_bounds_is_refused_with_a_page(
    admin: httpx.AsyncClient, path: str, page: str
) -> None:
    r = await admin.get(path, params={"page": page})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "page:" in r.text


@pytest.mark.parametrize("path", LISTS_WITH_PAGES)
async def test_the_last_allowed_page_is_an_empty_page(admin: httpx.AsyncClient, path: str) -> None:
    assert (await admin.get(path, params={"page": "1000000"})).status_code == 200


async def test_user_content_is_escaped(admin: httpx.AsyncClient) -> None:
    name = "<script>alert(1)</script>"
    workflow_id = await publish_workflow(admin, name, SIMPLE_DEFINITION)
    for path in ("/workflows", f"/workflows/{workflow_id}"):
        page = (await admin.get(path)).text
        assert name not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_the_assets_are_served_by_the_hub_with_their_licences(client: httpx.AsyncClient) -> None:
    for path, kind in (
        ("/assets/vendor/htmx.min.js", "javascript"),
        ("/assets/vendor/chart.umd.min.js", "javascript"),
        ("/assets/dashboard.js", "javascript"),
        ("/assets/dashboard.css", "css"),
    ):
        r = await client.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
    for path in ("/assets/vendor/htmx.LICENSE", "/assets/vendor/chart.js.LICENSE.md"):
        r = await client.get(path)
        assert r.status_code == 200 and "Permission" in r.text and "granted" in r.text, path
    page = (await client.get("/bootstrap")).text
    assert "https://" not in page  # nothing from a CDN


async def test_only_flash_messages_signed_by_the_hub_are_shown(admin: httpx.AsyncClient) -> None:
    forged = base64.urlsafe_b64encode(b'["ok", "Your account is locked, call 555"]').decode() + ".0000"
    for cookie in (forged, "%%%.x", "bm90IGpzb24.abc"):
        admin.cookies.set("exekra_flash", cookie)
        r = await admin.get("/")
        assert r.status_code == 200
        assert "call 555" not in r.text and 'class="flash' not in r.text
    admin.cookies.delete("exekra_flash")
