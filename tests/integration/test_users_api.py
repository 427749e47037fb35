"""User administration (SPEC §7.1): list, patch and delete as ADMIN, and the last-admin guard."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.audit.service import SYSTEM
from exekra.hub.context import Hub
from exekra.hub.errors import Conflict
from exekra.hub.users import service as users_service

from .conftest import ADMIN_EMAIL, PASSWORD, UNKNOWN_ID


async def _register(admin: httpx.AsyncClient, role: str = "OPERATOR", name: str = "") -> dict[str, Any]:
    email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    r = await admin.post("/api/auth/register", json={"email": email, "password": PASSWORD, "role": role, "name": name})
    assert r.status_code == 201, r.text
    user: dict[str, Any] = r.json()["user"]
    return user


async def _me(admin: httpx.AsyncClient) -> dict[str, Any]:
    user: dict[str, Any] = (await admin.get("/api/auth/me")).json()["user"]
    return user


async def _sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


# --- list ----------------------------------------------------------------------------------------------


async def test_list_users_returns_everyone_oldest_first_with_paging(admin: httpx.AsyncClient) -> None:
    created = [await _register(admin, name=f"user {i}") for i in range(3)]
    r = await admin.get("/api/users")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 4 and body["page"] == 1 and body["limit"] == 50
    assert [u["email"] for u in body["users"]] == [ADMIN_EMAIL, *(u["email"] for u in created)]
    assert all("password" not in key.lower() for u in body["users"] for key in u)

    page2 = (await admin.get("/api/users", params={"page": 2, "limit": 3})).json()
    assert page2["total"] == 4 and [u["id"] for u in page2["users"]] == [created[2]["id"]]


async def test_list_users_search_matches_email_or_name(admin: httpx.AsyncClient) -> None:
    wanted = await _register(admin, name="Grace Hopper")
    await _register(admin, name="Alan Turing")
    r = await admin.get("/api/users", params={"search": "hopper"})
    assert [u["id"] for u in r.json()["users"]] == [wanted["id"]] and r.json()["total"] == 1
    r = await admin.get("/api/users", params={"search": wanted["email"][:12]})
    assert [u["id"] for u in r.json()["users"]] == [wanted["id"]]


# --- patch ---------------------------------------------------------------------------------------------


async def test_patch_changes_name_and_role_and_keeps_other_fields(admin: httpx.AsyncClient) -> None:
    user = await _register(admin)
    r = await admin.patch(f"/api/users/{user['id']}", json={"name": "Renamed", "role": "DEVELOPER"})
    assert r.status_code == 200
    patched = r.json()["user"]
    assert patched["name"] == "Renamed" and patched["role"] == "DEVELOPER"
    assert patched["email"] == user["email"] and patched["disabled"] is False
    listed = {u["id"]: u for u in (await admin.get("/api/users")).json()["users"]}
    assert listed[user["id"]]["role"] == "DEVELOPER"


async def test_new_password_ends_existing_sessions_and_replaces_the_old_one(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    user = await _register(admin)
    token = (await _sign_in(client, user["email"])).json()["token"]
    client.cookies.clear()
    r = await admin.patch(f"/api/users/{user['id']}", json={"password": "a-brand-new-secret"})
    assert r.status_code == 200
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    assert (await _sign_in(client, user["email"])).status_code == 401
    assert (await _sign_in(client, user["email"], "a-brand-new-secret")).status_code == 200


@pytest.mark.parametrize("body", [{"role": "KING"}, {"password": "short"}, {"disabled": "maybe"}])
async def test_patch_with_invalid_fields_is_422(admin: httpx.AsyncClient, body: dict[str, Any]) -> None:
    user = await _register(admin)
    r = await admin.patch(f"/api/users/{user['id']}", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


@pytest.mark.parametrize("user_id", [UNKNOWN_ID, "not-a-uuid"])
async def test_patch_and_delete_of_unknown_or_malformed_user_id_are_404(admin: httpx.AsyncClient, user_id: str) -> None:
    assert (await admin.patch(f"/api/users/{user_id}", json={"name": "x"})).status_code == 404
    assert (await admin.delete(f"/api/users/{user_id}")).status_code == 404


# --- delete --------------------------------------------------------------------------------------------


async def test_delete_removes_the_user_and_their_sessions(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    user = await _register(admin)
    token = (await _sign_in(client, user["email"])).json()["token"]
    client.cookies.clear()
    r = await admin.delete(f"/api/users/{user['id']}")
    assert r.status_code == 200
    assert user["id"] not in [u["id"] for u in (await admin.get("/api/users")).json()["users"]]
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    assert (await _sign_in(client, user["email"])).status_code == 401
    assert (await admin.delete(f"/api/users/{user['id']}")).status_code == 404


async def test_admin_cannot_delete_themselves(admin: httpx.AsyncClient) -> None:
    await _register(admin, role="ADMIN")  # not the last admin: the self-check alone refuses
    me = await _me(admin)
    r = await admin.delete(f"/api/users/{me['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert (await admin.get("/api/auth/me")).status_code == 200


# --- the last admin ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"role": "DEVELOPER"}, {"role": "OPERATOR"}, {"disabled": True}])
async def test_last_active_admin_cannot_be_demoted_or_disabled(
    admin: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    me = await _me(admin)
    r = await admin.patch(f"/api/users/{me['id']}", json=change)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    after = await _me(admin)
    assert after["role"] == "ADMIN" and after["disabled"] is False


async def test_a_disabled_admin_does_not_count_as_another_admin(admin: httpx.AsyncClient) -> None:
    other = await _register(admin, role="ADMIN")
    assert (await admin.patch(f"/api/users/{other['id']}", json={"disabled": True})).status_code == 200
    me = await _me(admin)
    assert (await admin.patch(f"/api/users/{me['id']}", json={"role": "OPERATOR"})).status_code == 409


async def test_an_admin_can_be_demoted_while_another_active_admin_remains(admin: httpx.AsyncClient) -> None:
    other = await _register(admin, role="ADMIN")
    r = await admin.patch(f"/api/users/{other['id']}", json={"role": "OPERATOR"})
    assert r.status_code == 200 and r.json()["user"]["role"] == "OPERATOR"
    # Now the signed-in admin is the last one again.
    me = await _me(admin)
    assert (await admin.patch(f"/api/users/{me['id']}", json={"disabled": True})).status_code == 409


async def test_last_active_admin_cannot_be_deleted(admin: httpx.AsyncClient, hub: Hub) -> None:
    # Through the API an admin can only reach the last admin by deleting themselves (refused above),
    # so the rule itself is checked at the service, as the CLI or a maintenance job would call it.
    me = await _me(admin)
    with pytest.raises(Conflict, match="last active admin"):
        await users_service.delete_user(hub.db, me["id"], SYSTEM)
    async with hub.db.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM users WHERE role = 'ADMIN'"))).scalar_one() == 1


async def test_user_changes_are_audited_with_the_acting_admin(admin: httpx.AsyncClient, hub: Hub) -> None:
    me = await _me(admin)
    user = await _register(admin)
    await admin.patch(f"/api/users/{user['id']}", json={"role": "DEVELOPER", "password": "another-password"})
    await admin.delete(f"/api/users/{user['id']}")
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT action, actor_type, actor_id, details FROM audit_log "
                    "WHERE entity_type = 'user' AND entity_id = :id ORDER BY id"
                ),
                {"id": user["id"]},
            )
        ).all()
    assert [r.action for r in rows] == ["user.create", "user.update", "user.delete"]
    assert all(r.actor_type == "USER" and r.actor_id == me["id"] for r in rows)
    assert rows[1].details == {"role": "DEVELOPER", "password": "changed"}  # never the password itself
