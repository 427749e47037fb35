"""Sign-in and sessions (SPEC §7, §7.1): bootstrap, login, cookies, bearer tokens, logout, register, API tokens."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from exekra.db.raw import RawSession
from exekra.hub.auth import owners, security
from exekra.hub.auth import service as auth_service
from exekra.hub.context import Hub

from .conftest import ADMIN_EMAIL, PASSWORD, ClientFactory
from .protocol import eventually

WRONG_CREDENTIALS = "Wrong email or password"


def _cookie_attributes(response: httpx.Response) -> dict[str, str]:
    """The `token` Set-Cookie header as {attribute (lower case): value}; the first item is the cookie itself."""
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith("token="))
    attributes = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


async def _register(admin: httpx.AsyncClient, role: str | None = None, email: str | None = None) -> str:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, **({"role": role} if role else {})}
    r = await admin.post("/api/auth/register", json=body)
    assert r.status_code == 201, r.text
    return email


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    r = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- bootstrap ----------------------------------------------------------------------------------------


async def test_bootstrap_creates_admin_and_sets_httponly_lax_cookie_for_seven_days(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/api/auth/bootstrap", json={"email": "first@example.com", "password": PASSWORD, "name": "First"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"]["email"] == "first@example.com" and body["user"]["role"] == "ADMIN"
    assert body["user"]["name"] == "First" and body["user"]["disabled"] is False
    cookie = _cookie_attributes(r)
    assert cookie["token"] == body["token"]
    assert "httponly" in cookie and cookie["max-age"] == "604800" and cookie["samesite"].lower() == "lax"
    assert "secure" not in cookie  # plain HTTP here; Secure only over TLS
    assert (await client.get("/api/auth/me", headers=_bearer(body["token"]))).json()["user"]["role"] == "ADMIN"


async def test_bootstrap_ignores_a_requested_role_and_always_creates_an_admin(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/auth/bootstrap", json={"email": "first@example.com", "password": PASSWORD, "role": "OPERATOR"}
    )
    assert r.status_code == 201 and r.json()["user"]["role"] == "ADMIN"


async def test_second_bootstrap_is_refused_with_409_and_creates_no_user(client: httpx.AsyncClient, hub: Hub) -> None:
    first = await client.post("/api/auth/bootstrap", json={"email": "first@example.com", "password": PASSWORD})
    assert first.status_code == 201
    second = await client.post("/api/auth/bootstrap", json={"email": "second@example.com", "password": PASSWORD})
    assert second.status_code == 409 and second.json()["error"]["code"] == "conflict"
    async with hub.db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1


# --- login, cookie and bearer --------------------------------------------------------------------------


async def test_login_returns_user_and_token_and_sets_the_cookie(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    r = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["user"]["email"] == ADMIN_EMAIL and body["token"]
    cookie = _cookie_attributes(r)
    assert cookie["token"] == body["token"] and "httponly" in cookie and cookie["max-age"] == "604800"


async def test_login_email_is_case_insensitive(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL.upper(), "password": PASSWORD})
    assert r.status_code == 200 and r.json()["user"]["email"] == ADMIN_EMAIL


async def test_login_unknown_email_and_wrong_password_get_the_same_401(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    wrong_password = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": "not-it-at-all"})
    unknown = await client.post("/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert wrong_password.status_code == unknown.status_code == 401
    assert wrong_password.json() == unknown.json()
    assert wrong_password.json()["error"]["message"] == WRONG_CREDENTIALS
    assert "set-cookie" not in wrong_password.headers


async def test_session_cookie_alone_authenticates_me(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/auth/me")).status_code == 401
    await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert client.cookies.get("token") and "authorization" not in client.headers
    r = await client.get("/api/auth/me")
    assert r.status_code == 200 and r.json()["user"]["email"] == ADMIN_EMAIL


async def test_bearer_token_authenticates_me_and_garbage_does_not(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    token = await _login(client, ADMIN_EMAIL)
    client.cookies.clear()
    r = await client.get("/api/auth/me", headers=_bearer(token))
    assert r.status_code == 200 and r.json()["user"]["email"] == ADMIN_EMAIL
    r = await client.get("/api/auth/me", headers=_bearer(token + "x"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


async def test_logout_revokes_only_the_token_it_was_called_with(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    first = await _login(client, ADMIN_EMAIL)
    second = await _login(client, ADMIN_EMAIL)
    client.cookies.clear()
    r = await client.post("/api/auth/logout", headers=_bearer(first))
    assert r.status_code == 200
    assert _cookie_attributes(r).get("max-age") == "0"  # the browser drops the cookie
    assert (await client.get("/api/auth/me", headers=_bearer(first))).status_code == 401
    assert (await client.get("/api/auth/me", headers=_bearer(second))).status_code == 200
    assert (await client.post("/api/auth/logout", headers=_bearer(first))).status_code == 401


async def test_logout_by_cookie_ends_that_session(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    token = await _login(client, ADMIN_EMAIL)
    assert (await client.post("/api/auth/logout", headers=SAME_ORIGIN)).status_code == 200
    assert client.cookies.get("token") is None
    assert (await client.get("/api/auth/me", headers=_bearer(token))).status_code == 401


# --- cross-site requests (CSRF) ------------------------------------------------------------------------

SAME_ORIGIN = {"Origin": "http://testserver"}  # what a browser sends with a fetch POST from the hub's own pages


async def test_a_cookie_signed_api_call_that_changes_state_needs_the_hubs_origin_or_a_custom_header(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await _login(client, ADMIN_EMAIL)
    assert "authorization" not in client.headers
    for headers in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"}, {"Origin": "http://testserver.evil"}):
        r = await client.post("/api/auth/tokens", json={"name": "forged"}, headers=headers)
        assert r.status_code == 403, headers
        assert r.json()["error"]["code"] == "forbidden" and "Origin" in r.json()["error"]["message"]
    assert (await client.delete(f"/api/auth/tokens/{uuid.uuid4()}")).status_code == 403
    for headers in (SAME_ORIGIN, {"X-Requested-With": "XMLHttpRequest"}, {"X-CSRF-Token": "studio"}):
        r = await client.post("/api/auth/tokens", json={"name": "ok"}, headers=headers)
        assert r.status_code == 201, headers
    assert (await client.get("/api/auth/tokens")).status_code == 200  # reading needs no proof
    names = [t["name"] for t in (await client.get("/api/auth/tokens")).json()["apiTokens"]]
    assert names == ["ok", "ok", "ok"]


async def test_a_bearer_token_needs_no_origin_and_signing_in_again_is_no_cookie_signed_call(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    token = await _login(client, ADMIN_EMAIL)
    r = await client.post("/api/auth/tokens", json={"name": "script"}, headers=_bearer(token))
    assert r.status_code == 201
    assert await _login(client, ADMIN_EMAIL)  # the cookie of the first sign-in is sent along, and changes nothing


async def test_the_public_url_is_the_hubs_origin_too(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy that rewrites Host, the browser's Origin is the public URL's."""
    await _login(client, ADMIN_EMAIL)
    public = {"Origin": "https://exekra.example.com"}
    assert (await client.post("/api/auth/tokens", json={"name": "x"}, headers=public)).status_code == 403
    monkeypatch.setattr(hub.settings, "public_url", "https://exekra.example.com/")
    assert (await client.post("/api/auth/tokens", json={"name": "x"}, headers=public)).status_code == 201
    wrong_scheme = {"Origin": "http://exekra.example.com"}
    assert (await client.post("/api/auth/tokens", json={"name": "x"}, headers=wrong_scheme)).status_code == 403


# --- register ------------------------------------------------------------------------------------------


async def test_register_as_admin_defaults_role_to_operator_and_the_user_can_sign_in(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    r = await admin.post("/api/auth/register", json={"email": "op@example.com", "password": PASSWORD, "name": "Op"})
    assert r.status_code == 201
    user = r.json()["user"]
    assert user["role"] == "OPERATOR" and user["name"] == "Op" and "password" not in r.text
    token = await _login(client, "op@example.com")
    assert (await client.get("/api/auth/me", headers=_bearer(token))).json()["user"]["id"] == user["id"]
    async with hub.db.session() as session:
        stored = (
            await session.execute(text("SELECT password_hash FROM users WHERE email = 'op@example.com'"))
        ).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_register_with_explicit_role(admin: httpx.AsyncClient) -> None:
    r = await admin.post(
        "/api/auth/register", json={"email": "dev@example.com", "password": PASSWORD, "role": "DEVELOPER"}
    )
    assert r.status_code == 201 and r.json()["user"]["role"] == "DEVELOPER"


@pytest.mark.parametrize("role", ["DEVELOPER", "OPERATOR"])
async def test_register_is_admin_only(make_client: ClientFactory, role: str) -> None:
    user = await make_client(role)
    r = await user.post("/api/auth/register", json={"email": "x@example.com", "password": PASSWORD})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_register_duplicate_email_differing_only_in_case_is_409(admin: httpx.AsyncClient) -> None:
    await _register(admin, email="Dup@Example.com")
    r = await admin.post("/api/auth/register", json={"email": "dup@example.COM", "password": PASSWORD})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "short@example.com", "password": "1234567"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "x@example.com", "password": PASSWORD, "role": "ROOT"}, "role"),
    ],
)
async def test_register_rejects_invalid_fields_with_422_naming_the_field(
    admin: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    r = await admin.post("/api/auth/register", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed" and field in r.json()["error"]["message"]


# --- API tokens ----------------------------------------------------------------------------------------


async def test_api_token_is_shown_once_works_as_bearer_and_is_listed_without_its_value(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    r = await admin.post("/api/auth/tokens", json={"name": "ci script"})
    assert r.status_code == 201
    token, listed = r.json()["token"], r.json()["apiToken"]
    assert listed["name"] == "ci script" and listed["expiresAt"] is None  # long-lived unless told otherwise
    assert (await client.get("/api/auth/me", headers=_bearer(token))).json()["user"]["email"] == ADMIN_EMAIL

    tokens = await admin.get("/api/auth/tokens")
    assert tokens.status_code == 200
    assert [t["id"] for t in tokens.json()["apiTokens"]] == [listed["id"]]  # sessions are not API tokens
    assert token not in tokens.text
    async with hub.db.session() as session:
        stored = (await session.execute(text("SELECT t::text FROM auth_tokens t"))).scalars().all()
    assert stored and not any(token in row for row in stored)


async def test_api_token_with_expiry_reports_it(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/auth/tokens", json={"name": "short", "expiresInDays": 2})
    assert r.status_code == 201 and r.json()["apiToken"]["expiresAt"] is not None


async def test_revoked_api_token_gets_401_and_cannot_be_revoked_twice(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    created = (await admin.post("/api/auth/tokens", json={"name": "temp"})).json()
    r = await admin.delete(f"/api/auth/tokens/{created['apiToken']['id']}")
    assert r.status_code == 200
    assert (await client.get("/api/auth/me", headers=_bearer(created["token"]))).status_code == 401
    assert (await admin.get("/api/auth/tokens")).json()["apiTokens"] == []
    assert (await admin.delete(f"/api/auth/tokens/{created['apiToken']['id']}")).status_code == 404


async def test_users_see_and_revoke_only_their_own_api_tokens(
    make_client: ClientFactory, admin: httpx.AsyncClient
) -> None:
    other = await make_client("OPERATOR")
    mine = (await admin.post("/api/auth/tokens", json={"name": "admin's"})).json()["apiToken"]
    assert (await other.get("/api/auth/tokens")).json()["apiTokens"] == []
    assert (await other.delete(f"/api/auth/tokens/{mine['id']}")).status_code == 404
    assert [t["id"] for t in (await admin.get("/api/auth/tokens")).json()["apiTokens"]] == [mine["id"]]


# --- disabled users ------------------------------------------------------------------------------------


async def test_disabled_user_cannot_sign_in_and_existing_tokens_stop_working(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    email = await _register(admin)
    session_token = await _login(client, email)
    api_token = (await client.post("/api/auth/tokens", json={"name": "s"}, headers=_bearer(session_token))).json()[
        "token"
    ]
    client.cookies.clear()
    user_id = (await client.get("/api/auth/me", headers=_bearer(session_token))).json()["user"]["id"]

    assert (await admin.patch(f"/api/users/{user_id}", json={"disabled": True})).status_code == 200
    for token in (session_token, api_token):
        assert (await client.get("/api/auth/me", headers=_bearer(token))).status_code == 401
    r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"]["message"] == WRONG_CREDENTIALS

    assert (await admin.patch(f"/api/users/{user_id}", json={"disabled": False})).status_code == 200
    await _login(client, email)


# --- tokens resolved lately (hub/auth/owners.py) ------------------------------------------------------


async def test_a_token_used_lately_is_not_read_again_until_tokens_or_users_change(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[object] = []
    execute = RawSession.execute

    async def noting_token_reads(self: RawSession, statement: Any, params: Any = None) -> Any:
        if statement is auth_service._TOKEN_OWNER:
            reads.append(params)
        return await execute(self, statement, params)

    monkeypatch.setattr(RawSession, "execute", noting_token_reads)
    assert (await admin.get("/api/auth/me")).status_code == 200
    reads.clear()
    for _ in range(3):
        assert (await admin.get("/api/auth/me")).status_code == 200
    await _register(admin)  # a new user changes no token
    assert (await admin.get("/api/auth/me")).status_code == 200
    assert reads == []
    owners.token_owners.forget()  # what a change announces
    assert (await admin.get("/api/auth/me")).status_code == 200
    assert len(reads) == 1


@pytest.mark.parametrize(
    ("change", "status", "role"),
    [
        ("DELETE FROM auth_tokens WHERE user_id = :user_id", 401, None),
        ("UPDATE users SET disabled = true WHERE id = :user_id", 401, None),
        ("UPDATE users SET role = 'DEVELOPER' WHERE id = :user_id", 200, "DEVELOPER"),
        ("UPDATE auth_tokens SET expires_at = now() WHERE user_id = :user_id", 401, None),
    ],
)
async def test_a_change_made_elsewhere_reaches_every_hub_process_through_the_database(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, change: str, status: int, role: str | None
) -> None:
    """Another hub process, or `exekra` on the command line, changes tokens and users without this process's
    services: the database announces the change (a trigger's NOTIFY) and the token is read again."""
    token = await _login(client, await _register(admin, "OPERATOR"))
    client.cookies.clear()
    me = await client.get("/api/auth/me", headers=_bearer(token))
    assert me.status_code == 200  # now known to this process
    async with hub.db.transaction() as session:
        await session.execute(text(change), {"user_id": uuid.UUID(me.json()["user"]["id"])})

    async def changed() -> bool:
        r = await client.get("/api/auth/me", headers=_bearer(token))
        return r.status_code == status and (role is None or r.json()["user"]["role"] == role)

    await eventually(changed, 5, "the change to be seen")


# --- login failure limits ------------------------------------------------------------------------------


def _from_address(hub_app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=hub_app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_login_failures_are_limited_per_account_with_429_and_retry_after(
    admin: httpx.AsyncClient, hub_app: FastAPI, strict_login_limit: int
) -> None:
    victim = await _register(admin)
    bystander = await _register(admin)
    async with _from_address(hub_app, "10.0.0.1") as attacker, _from_address(hub_app, "10.0.0.2") as elsewhere:
        for _ in range(strict_login_limit):
            r = await attacker.post("/api/auth/login", json={"email": victim, "password": "guess-guess"})
            assert r.status_code == 401
        # The account is locked even with the right password from another address...
        blocked = await elsewhere.post("/api/auth/login", json={"email": victim.upper(), "password": PASSWORD})
        assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "rate_limited"
        assert int(blocked.headers["Retry-After"]) >= 1
        # ...while other accounts from that address are not affected.
        assert (
            await elsewhere.post("/api/auth/login", json={"email": bystander, "password": PASSWORD})
        ).status_code == 200


async def test_login_failures_are_limited_per_address(
    admin: httpx.AsyncClient, hub_app: FastAPI, strict_login_limit: int
) -> None:
    bystander = await _register(admin)
    async with _from_address(hub_app, "10.0.0.3") as attacker:
        for i in range(strict_login_limit):
            r = await attacker.post("/api/auth/login", json={"email": f"guess{i}@example.com", "password": "nope-nope"})
            assert r.status_code == 401
        r = await attacker.post("/api/auth/login", json={"email": bystander, "password": PASSWORD})
        assert r.status_code == 429 and "Retry-After" in r.headers


async def test_successful_logins_do_not_count_as_failures(
    admin: httpx.AsyncClient, hub_app: FastAPI, strict_login_limit: int
) -> None:
    email = await _register(admin)
    async with _from_address(hub_app, "10.0.0.4") as c:
        for _ in range(strict_login_limit + 2):
            assert (await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})).status_code == 200


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the password checks the hub runs (`checked`, an unknown account's included) and the most running
    at once (`most`); each takes 50 ms more, so that parallel sign-ins overlap."""
    seen = {"checked": 0, "running": 0, "most": 0}
    verify = security.verify_password

    async def slow_verify(password_hash: str, password: str) -> bool:
        seen["checked"] += 1
        seen["running"] += 1
        seen["most"] = max(seen["most"], seen["running"])
        try:
            await asyncio.sleep(0.05)
            return await verify(password_hash, password)
        finally:
            seen["running"] -= 1

    monkeypatch.setattr(auth_service, "verify_password", slow_verify)
    monkeypatch.setattr(security, "verify_password", slow_verify)  # an unknown account's check, too
    return seen


async def test_parallel_wrong_passwords_are_counted_before_they_are_checked(
    admin: httpx.AsyncClient,
    hub_app: FastAPI,
    hub: Hub,
    strict_login_limit: int,
    password_checks: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub.settings, "login_checks_in_flight", 100)  # only the count may stop them here
    victim = await _register(admin)
    async with _from_address(hub_app, "10.0.1.1") as attacker:
        answers = await asyncio.gather(
            *(attacker.post("/api/auth/login", json={"email": victim, "password": f"guess-{i}"}) for i in range(20))
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * strict_login_limit + [429] * (20 - strict_login_limit)
    assert password_checks["checked"] == strict_login_limit
    async with hub.db.session() as session:
        failed = await session.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed'"))
    assert failed == strict_login_limit


async def test_password_checks_running_at_once_are_capped_per_account_and_per_address(
    admin: httpx.AsyncClient, hub_app: FastAPI, hub: Hub, password_checks: dict[str, int]
) -> None:
    assert hub.settings.login_checks_in_flight == 2
    victim = await _register(admin)
    clients = [_from_address(hub_app, f"10.0.2.{i}") for i in range(8)]
    answers = await asyncio.gather(
        *(c.post("/api/auth/login", json={"email": victim, "password": "wrong-one"}) for c in clients)
    )
    assert password_checks["most"] == 2
    assert sorted(r.status_code for r in answers) == [401, 401] + [429] * 6
    assert all(r.headers["Retry-After"] == "1" for r in answers if r.status_code == 429)
    password_checks["most"] = 0
    async with _from_address(hub_app, "10.0.3.1") as one_address:
        answers = await asyncio.gather(
            *(
                one_address.post("/api/auth/login", json={"email": f"u{i}@example.com", "password": "x"})
                for i in range(8)
            )
        )
    assert password_checks["most"] == 2
    assert sorted(r.status_code for r in answers) == [401, 401] + [429] * 6
    for c in clients:
        await c.aclose()


async def test_an_address_the_account_signed_in_from_before_keeps_its_own_budget(
    admin: httpx.AsyncClient, hub_app: FastAPI, strict_login_limit: int
) -> None:
    owner_email = await _register(admin)
    async with (
        _from_address(hub_app, "10.0.4.9") as owner,
        _from_address(hub_app, "10.0.4.1") as attacker,
        _from_address(hub_app, "10.0.4.2") as new_place,
    ):
        assert (
            await owner.post("/api/auth/login", json={"email": owner_email, "password": PASSWORD})
        ).status_code == 200
        for i in range(strict_login_limit):
            r = await attacker.post("/api/auth/login", json={"email": owner_email, "password": f"guess-{i}"})
            assert r.status_code == 401
        assert (
            await attacker.post("/api/auth/login", json={"email": owner_email, "password": PASSWORD})
        ).status_code == 429
        assert (
            await new_place.post("/api/auth/login", json={"email": owner_email, "password": PASSWORD})
        ).status_code == 429
        # The owner's usual address still gets in...
        assert (
            await owner.post("/api/auth/login", json={"email": owner_email, "password": PASSWORD})
        ).status_code == 200
        # ...within a budget of its own: its own failures use it up.
        for _ in range(strict_login_limit):
            r = await owner.post("/api/auth/login", json={"email": owner_email, "password": "typo-typo"})
            assert r.status_code == 401
        assert (
            await owner.post("/api/auth/login", json={"email": owner_email, "password": PASSWORD})
        ).status_code == 429


# --- changing one's own password (issue 13, item 6) ----------------------------------------------------


@pytest.mark.parametrize("role", ["ADMIN", "DEVELOPER", "OPERATOR"])
async def test_every_role_changes_its_own_password_and_its_other_sessions_end(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, role: str
) -> None:
    email = ADMIN_EMAIL if role == "ADMIN" else await _register(admin, role)
    current = await _login(client, email)
    other = await _login(client, email)
    api_token = (await client.post("/api/auth/tokens", json={"name": "ci"}, headers=_bearer(current))).json()["token"]
    new_password = f"new-{uuid.uuid4().hex[:12]}"
    r = await client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": new_password},
        headers=_bearer(current),
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"].lower() == email.lower()
    assert (await client.get("/api/auth/me", headers=_bearer(current))).status_code == 200  # this session goes on
    assert (await client.get("/api/auth/me", headers=_bearer(other))).status_code == 401  # the others end
    assert (await client.get("/api/auth/me", headers=_bearer(api_token))).status_code == 200  # scripts' tokens stay
    old = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    assert await _login(client, email, new_password)
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                text("SELECT actor_type, actor_id, entity_id FROM audit_log WHERE action = 'user.password'")
            )
        ).all()
    user_id = r.json()["user"]["id"]
    assert [(a, str(b), str(c)) for a, b, c in rows] == [("USER", user_id, user_id)]


async def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failed_sign_in(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, strict_login_limit: int
) -> None:
    email = await _register(admin)
    token = await _login(client, email)
    for _ in range(strict_login_limit):
        r = await client.post(
            "/api/auth/password",
            json={"currentPassword": "not-the-one", "newPassword": "whatever-else"},
            headers=_bearer(token),
        )
        assert r.status_code == 422 and r.json()["error"]["message"] == "currentPassword: wrong password"
    r = await client.post(
        "/api/auth/password", json={"currentPassword": PASSWORD, "newPassword": "whatever-else"}, headers=_bearer(token)
    )
    assert r.status_code == 429 and "Retry-After" in r.headers
    blocked = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert blocked.status_code == 429


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currentPassword": PASSWORD, "newPassword": "short"}, "newPassword"),
        ({"currentPassword": PASSWORD}, "newPassword"),
        ({"newPassword": "long-enough-1"}, "currentPassword"),
    ],
)
async def test_password_change_bodies_are_validated(admin: httpx.AsyncClient, body: dict[str, str], field: str) -> None:
    r = await admin.post("/api/auth/password", json=body)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith(field)


async def test_changing_the_password_needs_a_sign_in(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/password", json={"currentPassword": "a" * 8, "newPassword": "b" * 8})
    assert r.status_code == 401
