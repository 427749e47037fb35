"""What every answer carries and whom the hub believes (docs/security.md): the security headers, HSTS under TLS,
and the client's address and scheme from trusted proxies only (`EXEKRA_TRUSTED_PROXIES`)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import ADMIN_EMAIL, PASSWORD, HubWith, OnlineRunner

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


def _client(app: FastAPI, peer: str, scheme: str = "http") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver")


def _assert_secured(r: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name)
    policy = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


async def test_every_kind_of_answer_sends_the_security_headers(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    runner = await online_runner("headers")
    answers = [
        await admin.get("/api/runners"),  # API
        await client.get("/api/auth/me"),  # API error
        await client.get("/api/no-such-thing"),  # no route
        await runner.heartbeat(),  # the runner protocol
        await client.get("/login"),  # a dashboard page
        await client.get("/assets/dashboard.css"),  # a static file
        await client.get("/metrics"),
        await client.get("/api/docs"),
    ]
    for r in answers:
        _assert_secured(r)
    page_policy = answers[4].headers["content-security-policy"]
    assert "script-src 'self';" in page_policy and "style-src 'self';" in page_policy
    assert "unsafe" not in page_policy  # the dashboard has no inline script, style or handler
    assert "script-src 'self' 'unsafe-inline'" in answers[-1].headers["content-security-policy"]  # Swagger UI


async def test_hsts_only_over_tls(hub_app: FastAPI, hub: Hub) -> None:
    async with _client(hub_app, "10.1.0.1", "https") as tls, _client(hub_app, "10.1.0.1") as plain:
        assert (await tls.get("/api/health")).headers["strict-transport-security"] == "max-age=31536000"
        assert "strict-transport-security" not in (await plain.get("/api/health")).headers
        # A header claiming TLS from a proxy nobody trusted changes nothing.
        forged = await plain.get("/api/health", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in forged.headers


async def _failed_sign_in_addresses(hub: Hub) -> list[str]:
    async with hub.db.session() as session:
        rows = await session.execute(text("SELECT ip FROM audit_log WHERE action = 'auth.login_failed' ORDER BY id"))
        return [row.ip for row in rows]


async def _fail_sign_in(c: httpx.AsyncClient, forwarded_for: str) -> int:
    body = {"email": ADMIN_EMAIL, "password": "not-the-password"}
    r = await c.post("/api/auth/login", json=body, headers={"X-Forwarded-For": forwarded_for})
    return r.status_code


async def test_x_forwarded_for_is_ignored_until_proxies_are_trusted(
    admin: httpx.AsyncClient, hub_app: FastAPI, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "login_failures_per_minute", 3)
    async with _client(hub_app, "10.1.0.2") as attacker:
        # A new X-Forwarded-For on every try does not make a new address: the sign-in limit holds.
        statuses = [await _fail_sign_in(attacker, f"198.51.100.{i}") for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert await _failed_sign_in_addresses(hub) == ["10.1.0.2"] * 3  # and the audit names the real peer


async def test_a_trusted_proxy_forwards_the_client_address_and_scheme(
    admin: httpx.AsyncClient, hub_with: HubWith, hub: Hub
) -> None:
    async with (
        hub_with(trusted_proxies=["10.2.0.0/16"]) as app,
        _client(app, "10.2.0.7") as proxy,
        _client(app, "192.0.2.50") as stranger,
    ):
        assert await _fail_sign_in(proxy, "203.0.113.9") == 401
        assert await _fail_sign_in(stranger, "203.0.113.10") == 401
        tls = await proxy.post(
            "/api/auth/login",
            json={"email": ADMIN_EMAIL, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        )
        assert tls.status_code == 200
        assert tls.headers["strict-transport-security"] == "max-age=31536000"
        assert "secure" in tls.headers["set-cookie"].lower()
        spoofed = await stranger.get("/api/health", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in spoofed.headers
    assert await _failed_sign_in_addresses(hub) == ["203.0.113.9", "192.0.2.50"]
