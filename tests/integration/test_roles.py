"""The role matrix of SPEC §10.2, endpoint by endpoint (§7.1), including the unauthenticated case.

Every user-facing route is listed in `ENDPOINTS` with the roles that may call it; each is called by each role
and by an anonymous client. Anonymous callers get 401 (except on public routes), roles outside the row get
403, roles in it get anything but 401/403 (404 or 422 are expected: the ids and bodies are dummies).
A route of the app missing from the table fails `test_every_user_facing_route_is_in_the_role_table`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from exekra.hub.audit.service import SYSTEM
from exekra.hub.auth import service as auth_service
from exekra.hub.context import Hub
from exekra.hub.users.models import Role, TokenKind, User

ANY = frozenset({"ADMIN", "DEVELOPER", "OPERATOR"})
DEVELOPERS = frozenset({"ADMIN", "DEVELOPER"})
ADMINS = frozenset({"ADMIN"})
PUBLIC = None  # no sign-in needed

ROLES = ["ADMIN", "DEVELOPER", "OPERATOR", None]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str] | None

    @property
    def key(self) -> tuple[str, str]:
        return self.method, _shape(self.path)


# SPEC §7.1, with the roles of §10.2.
ENDPOINTS = [
    Endpoint("POST", "/api/auth/bootstrap", PUBLIC),
    Endpoint("POST", "/api/auth/login", PUBLIC),
    Endpoint("POST", "/api/auth/logout", ANY),
    Endpoint("GET", "/api/auth/me", ANY),
    Endpoint("POST", "/api/auth/register", ADMINS),
    Endpoint("POST", "/api/auth/tokens", ANY),
    Endpoint("GET", "/api/auth/tokens", ANY),
    Endpoint("DELETE", "/api/auth/tokens/{token_id}", ANY),
    Endpoint("POST", "/api/auth/password", ANY),
    Endpoint("GET", "/api/users", ADMINS),
    Endpoint("PATCH", "/api/users/{user_id}", ADMINS),
    Endpoint("DELETE", "/api/users/{user_id}", ADMINS),
    Endpoint("GET", "/api/workflows", ANY),
    Endpoint("POST", "/api/workflows", DEVELOPERS),
    Endpoint("POST", "/api/workflows/import", DEVELOPERS),
    Endpoint("GET", "/api/workflows/{workflow_id}", ANY),
    Endpoint("PATCH", "/api/workflows/{workflow_id}", DEVELOPERS),
    Endpoint("DELETE", "/api/workflows/{workflow_id}", DEVELOPERS),
    Endpoint("POST", "/api/workflows/{workflow_id}/versions", DEVELOPERS),
    Endpoint("GET", "/api/workflows/{workflow_id}/versions", ANY),
    Endpoint("GET", "/api/workflows/{workflow_id}/versions/{number}", ANY),
    Endpoint("POST", "/api/workflows/{workflow_id}/publish", DEVELOPERS),
    Endpoint("GET", "/api/workflows/{workflow_id}/export", DEVELOPERS),
    Endpoint("POST", "/api/executions", ANY),
    Endpoint("GET", "/api/executions", ANY),
    Endpoint("GET", "/api/executions/{execution_id}", ANY),
    Endpoint("GET", "/api/executions/{execution_id}/logs", ANY),
    Endpoint("GET", "/api/executions/{execution_id}/nodes", ANY),
    Endpoint("GET", "/api/executions/{execution_id}/logs/stream", ANY),
    Endpoint("GET", "/api/executions/{execution_id}/artifacts", ANY),
    Endpoint("GET", "/api/executions/{execution_id}/artifacts/{artifact_id}", ANY),
    Endpoint("POST", "/api/executions/{execution_id}/stop", ANY),
    Endpoint("POST", "/api/executions/{execution_id}/retry", ANY),
    Endpoint("GET", "/api/runners", ANY),
    Endpoint("POST", "/api/runners", ADMINS),
    Endpoint("GET", "/api/runners/{runner_id}", ANY),
    Endpoint("PATCH", "/api/runners/{runner_id}", ADMINS),
    Endpoint("DELETE", "/api/runners/{runner_id}", ADMINS),
    Endpoint("POST", "/api/runners/{runner_id}/regenerate-secret", ADMINS),
    Endpoint("GET", "/api/runners/{runner_id}/metrics", ANY),
    Endpoint("GET", "/api/credentials", DEVELOPERS),
    Endpoint("POST", "/api/credentials", DEVELOPERS),
    Endpoint("GET", "/api/credentials/{credential_id}", DEVELOPERS),
    Endpoint("PATCH", "/api/credentials/{credential_id}", DEVELOPERS),
    Endpoint("DELETE", "/api/credentials/{credential_id}", DEVELOPERS),
    Endpoint("GET", "/api/audit", ADMINS),
    Endpoint("GET", "/api/stats", ANY),
    Endpoint("GET", "/api/activities", ANY),
    Endpoint("GET", "/api/triggers", ANY),
    Endpoint("POST", "/api/triggers", DEVELOPERS),
    Endpoint("GET", "/api/triggers/{trigger_id}", ANY),
    Endpoint("PATCH", "/api/triggers/{trigger_id}", DEVELOPERS),
    Endpoint("DELETE", "/api/triggers/{trigger_id}", DEVELOPERS),
    Endpoint("POST", "/api/triggers/{trigger_id}/rotate-token", DEVELOPERS),
    # Alerts (docs/alerts.md): channels hold addresses and secrets (ADMIN); rules and retries are DEVELOPER+.
    Endpoint("GET", "/api/alerts/channels", ANY),
    Endpoint("POST", "/api/alerts/channels", ADMINS),
    Endpoint("GET", "/api/alerts/channels/{channel_id}", ANY),
    Endpoint("PATCH", "/api/alerts/channels/{channel_id}", ADMINS),
    Endpoint("DELETE", "/api/alerts/channels/{channel_id}", ADMINS),
    Endpoint("POST", "/api/alerts/channels/{channel_id}/rotate-secret", ADMINS),
    Endpoint("POST", "/api/alerts/channels/{channel_id}/test", ADMINS),
    Endpoint("GET", "/api/alerts/rules", ANY),
    Endpoint("POST", "/api/alerts/rules", DEVELOPERS),
    Endpoint("GET", "/api/alerts/rules/{rule_id}", ANY),
    Endpoint("PATCH", "/api/alerts/rules/{rule_id}", DEVELOPERS),
    Endpoint("DELETE", "/api/alerts/rules/{rule_id}", DEVELOPERS),
    Endpoint("GET", "/api/alerts/deliveries", ANY),
    Endpoint("GET", "/api/alerts/deliveries/{delivery_id}", ANY),
    Endpoint("POST", "/api/alerts/deliveries/{delivery_id}/retry", DEVELOPERS),
    Endpoint("GET", "/api/license", ANY),
    Endpoint("POST", "/api/license", ADMINS),
]

# Not user-facing (SPEC §7.2, §7.3) or not part of the API proper.
NOT_IN_MATRIX = ("/api/runner/", "/api/webhooks/", "/api/health", "/api/docs", "/api/openapi.json")


def _shape(path: str) -> str:
    """The path with every parameter name erased, so the table need not follow the routes' parameter names."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def _app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path shape) of every `/api/...` route of the app that the matrix covers."""
    routes = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not path.startswith("/api/") or path.startswith(NOT_IN_MATRIX):
            continue
        routes |= {(method, _shape(path)) for method in route.methods or () if method != "HEAD"}
    return routes


@pytest.fixture(scope="module")
async def users_by_role(hub_app: FastAPI) -> AsyncIterator[dict[str, User]]:
    """One user per role, made once for the matrix (tokens are issued per test, so logout harms no one).

    The matrix only reads or fails, so it runs without the per-test emptying of the database.
    """
    hub: Hub = hub_app.state.hub
    users = {}
    async with hub.db.transaction() as session:
        for role in Role:
            user = User(email=f"matrix-{role.lower()}-{uuid.uuid4().hex[:8]}@example.com", role=role, password_hash="!")
            session.add(user)
            users[role.value] = user
    yield users


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role or "anonymous")
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_role_matrix(
    hub_app: FastAPI, users_by_role: dict[str, User], endpoint: Endpoint, role: str | None
) -> None:
    hub: Hub = hub_app.state.hub
    headers = {}
    if role is not None:
        token, _ = await auth_service.issue_token(
            hub.db, users_by_role[role], TokenKind.SESSION, ttl=timedelta(minutes=5), actor=SYSTEM
        )
        headers["Authorization"] = f"Bearer {token}"
    url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), endpoint.path)
    body: dict[str, object] | None = {} if endpoint.method in ("POST", "PATCH") else None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub_app), base_url="http://testserver") as c:
        r = await c.request(endpoint.method, url, json=body, headers=headers)

    if endpoint.allowed is PUBLIC or (role is not None and role in endpoint.allowed):
        assert r.status_code not in (401, 403), r.text
    elif role is None:
        assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated", r.text
    else:
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text


def test_every_user_facing_route_is_in_the_role_table(hub_app: FastAPI) -> None:
    missing = _app_routes(hub_app) - {e.key for e in ENDPOINTS}
    assert not missing, f"add these routes to ENDPOINTS with the roles SPEC §10.2 gives them: {sorted(missing)}"


def test_role_table_has_no_duplicate_rows() -> None:
    keys = [e.key for e in ENDPOINTS]
    assert len(keys) == len(set(keys))
