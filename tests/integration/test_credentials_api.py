"""Credential store (SPEC §7.1, §10.5): values encrypted at rest, never returned, ADMIN/DEVELOPER only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.audit.service import Actor
from exekra.hub.context import Hub
from exekra.hub.credentials import service
from exekra.hub.credentials.crypto import (
    NONCE_BYTES,
    SEALED_V1,
    DecryptionFailed,
    credential_context,
    credentials_key,
    decrypt_fields,
    encrypt_fields,
)
from exekra.hub.credentials.schemas import CredentialPatch, NewCredential
from exekra.hub.errors import Conflict, NotFound

from .conftest import UNKNOWN_ID, ClientFactory

SECRET = "s3cr3t-Pa55w0rd-that-must-never-leak"
FIELDS = {"username": "robot", "password": SECRET}
CREDENTIAL_KEYS = {"id", "name", "type", "fieldNames", "createdAt", "updatedAt"}
SYSTEM = Actor("SYSTEM")
HERE = credential_context(uuid.UUID(int=1))


async def create(client: httpx.AsyncClient, name: str = "erp", **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/credentials", json={"name": name, "type": "basic", "fields": FIELDS, **extra})
    assert r.status_code == 201, r.text
    assert SECRET not in r.text
    credential: dict[str, Any] = r.json()["credential"]
    return credential


async def stored_blob(hub: Hub, credential_id: str) -> bytes:
    async with hub.db.session() as session:
        blob: bytes = (
            await session.execute(
                text("SELECT encrypted_fields FROM credentials WHERE id = :id"), {"id": uuid.UUID(credential_id)}
            )
        ).scalar_one()
    return blob


async def audit_rows(hub: Hub) -> list[tuple[str, str | None, str]]:
    async with hub.db.session() as session:
        rows = await session.execute(
            text(
                "SELECT action, entity_id, details::text AS details FROM audit_log WHERE action LIKE 'credential.%' ORDER BY id"
            )
        )
        return [(r.action, r.entity_id, r.details) for r in rows]


# --- encryption -----------------------------------------------------------------------------------


def test_encryption_round_trips_with_a_fresh_nonce_each_time() -> None:
    key = credentials_key(b"k" * 32)
    first, second = encrypt_fields(key, FIELDS, HERE), encrypt_fields(key, FIELDS, HERE)
    assert first.startswith(SEALED_V1) and second.startswith(SEALED_V1)  # the version marker
    nonce = slice(len(SEALED_V1), len(SEALED_V1) + NONCE_BYTES)
    assert first != second and first[nonce] != second[nonce]
    assert SECRET.encode() not in first
    assert decrypt_fields(key, first, HERE) == FIELDS == decrypt_fields(key, second, HERE)


def test_decryption_fails_with_another_key_or_altered_bytes() -> None:
    key = credentials_key(b"k" * 32)
    blob = encrypt_fields(key, FIELDS, HERE)
    with pytest.raises(DecryptionFailed):
        decrypt_fields(credentials_key(b"j" * 32), blob, HERE)
    with pytest.raises(DecryptionFailed):
        decrypt_fields(key, blob[:-1] + bytes([blob[-1] ^ 1]), HERE)
    with pytest.raises(DecryptionFailed):
        decrypt_fields(key, blob[: len(SEALED_V1) + NONCE_BYTES], HERE)
    with pytest.raises(DecryptionFailed, match="before migration 0013"):
        decrypt_fields(key, blob[len(SEALED_V1) :], HERE)  # no marker: the old format is not read here


def test_decryption_fails_for_another_credential_id() -> None:
    key = credentials_key(b"k" * 32)
    blob = encrypt_fields(key, FIELDS, HERE)
    with pytest.raises(DecryptionFailed, match="belongs to another row"):
        decrypt_fields(key, blob, credential_context(uuid.UUID(int=2)))


def test_the_credentials_key_is_derived_not_the_master_key() -> None:
    master = b"m" * 32
    assert len(credentials_key(master)) == 32 and credentials_key(master) != master


# --- service --------------------------------------------------------------------------------------

READ = (Actor("RUNNER", "runner-1"), "execution-1", 1)
"""Who reads a credential for which execution and attempt (`credential_for_runner` audits it)."""


async def test_service_stores_fields_encrypted_and_hands_them_to_the_runner(hub: Hub) -> None:
    credential, names = await service.create_credential(
        hub.db, hub.secret_key, NewCredential(name="db", type="postgres", fields=FIELDS), SYSTEM
    )
    assert names == ["password", "username"]
    blob = await stored_blob(hub, str(credential.id))
    assert SECRET.encode() not in blob and b"robot" not in blob
    assert decrypt_fields(credentials_key(hub.secret_key), blob, credential_context(credential.id)) == FIELDS

    async with hub.db.session() as session:
        delivered = await service.credential_for_runner(session, hub.secret_key, "db", *READ)
        assert delivered == {"name": "db", "type": "postgres", "fields": FIELDS}
        with pytest.raises(NotFound):
            await service.credential_for_runner(session, hub.secret_key, "missing", *READ)
        with pytest.raises(Conflict, match="cannot be decrypted"):
            await service.credential_for_runner(session, b"another key" * 3, "db", *READ)


async def test_service_updates_lists_and_deletes(hub: Hub) -> None:
    credential, _ = await service.create_credential(
        hub.db, hub.secret_key, NewCredential(name="api", fields={"token": "t1"}), SYSTEM
    )
    await service.create_credential(hub.db, hub.secret_key, NewCredential(name="aaa", fields={"k": "v"}), SYSTEM)
    with pytest.raises(Conflict):
        await service.create_credential(hub.db, hub.secret_key, NewCredential(name="api", fields={"k": "v"}), SYSTEM)

    updated, names = await service.update_credential(
        hub.db, hub.secret_key, str(credential.id), CredentialPatch(fields={"apiKey": "t2"}), SYSTEM
    )
    assert names == ["apiKey"] and updated.name == "api" and updated.updated_at >= credential.updated_at
    async with hub.db.session() as session:
        assert (await service.credential_for_runner(session, hub.secret_key, "api", *READ))["fields"] == {
            "apiKey": "t2"
        }

    views, total = await service.list_credentials(hub.db, hub.secret_key, offset=0, limit=10)
    assert total == 2 and [(c.name, n) for c, n in views] == [("aaa", ["k"]), ("api", ["apiKey"])]
    # A changed secret key leaves the list readable; the names are then unknown.
    views, _ = await service.list_credentials(hub.db, b"another key" * 3, offset=0, limit=10)
    assert [n for _, n in views] == [None, None]

    await service.delete_credential(hub.db, str(credential.id), SYSTEM)
    with pytest.raises(NotFound):
        await service.get_credential(hub.db, hub.secret_key, str(credential.id))
    assert [a for a, _, _ in await audit_rows(hub)] == [
        "credential.create",
        "credential.create",
        "credential.update",
        "credential.delete",
    ]


# --- API ------------------------------------------------------------------------------------------


async def test_create_answers_names_never_values(admin: httpx.AsyncClient, hub: Hub) -> None:
    credential = await create(admin, "erp")
    assert set(credential) == CREDENTIAL_KEYS
    assert uuid.UUID(credential["id"]) and credential["name"] == "erp" and credential["type"] == "basic"
    assert credential["fieldNames"] == ["password", "username"]
    assert credential["createdAt"].endswith("Z") and credential["updatedAt"]


async def test_type_defaults_to_generic(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/credentials", json={"name": "plain", "fields": {"value": SECRET}})
    assert r.status_code == 201 and r.json()["credential"]["type"] == "generic"


async def test_values_are_stored_encrypted(admin: httpx.AsyncClient, hub: Hub) -> None:
    first = await create(admin, "one")
    second = await create(admin, "two")
    blob_one, blob_two = await stored_blob(hub, first["id"]), await stored_blob(hub, second["id"])
    assert SECRET.encode() not in blob_one and b"robot" not in blob_one and b"password" not in blob_one
    assert blob_one != blob_two  # same fields, different nonces
    assert decrypt_fields(credentials_key(hub.secret_key), blob_one, credential_context(first["id"])) == FIELDS


async def test_a_value_copied_onto_another_credential_does_not_decrypt_there(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    source = await create(admin, "source")
    target = await create(admin, "target")
    async with hub.db.transaction() as session:
        await session.execute(
            text("UPDATE credentials SET encrypted_fields = :blob WHERE id = :id"),
            {"blob": await stored_blob(hub, source["id"]), "id": uuid.UUID(target["id"])},
        )
    r = await admin.get(f"/api/credentials/{target['id']}")
    assert r.status_code == 200 and r.json()["credential"]["fieldNames"] is None
    async with hub.db.session() as session:
        with pytest.raises(Conflict, match="credential target cannot be decrypted: the value belongs to another row"):
            await service.credential_for_runner(session, hub.secret_key, "target", *READ)
        assert (await service.credential_for_runner(session, hub.secret_key, "source", *READ))["fields"] == FIELDS


async def test_values_never_appear_in_any_response(admin: httpx.AsyncClient) -> None:
    credential = await create(admin, "hidden")
    responses = [
        await admin.get("/api/credentials"),
        await admin.get(f"/api/credentials/{credential['id']}"),
        await admin.patch(f"/api/credentials/{credential['id']}", json={"fields": {"password": SECRET + "2"}}),
        await admin.patch(f"/api/credentials/{credential['id']}", json={"name": "hidden2"}),
        await admin.delete(f"/api/credentials/{credential['id']}"),
    ]
    for r in responses:
        assert r.status_code == 200, r.text
        assert SECRET not in r.text and "robot" not in r.text


async def test_list_pages_by_name(admin: httpx.AsyncClient) -> None:
    for name in ("charlie", "alpha", "bravo"):
        await create(admin, name)
    listed = (await admin.get("/api/credentials")).json()
    assert set(listed) == {"credentials", "total", "page", "limit", "nextCursor"}
    assert [c["name"] for c in listed["credentials"]] == ["alpha", "bravo", "charlie"] and listed["total"] == 3
    assert all(set(c) == {*CREDENTIAL_KEYS, "references"} for c in listed["credentials"])
    page = (await admin.get("/api/credentials", params={"page": 2, "limit": 2})).json()
    assert [c["name"] for c in page["credentials"]] == ["charlie"]
    assert (page["total"], page["page"], page["limit"], page["nextCursor"]) == (3, 2, 2, None)


async def test_get_one(admin: httpx.AsyncClient) -> None:
    credential = await create(admin, "single")
    r = await admin.get(f"/api/credentials/{credential['id']}")
    assert r.status_code == 200 and r.json() == {"credential": credential}


async def test_patch_renames_retypes_and_replaces_fields(admin: httpx.AsyncClient, hub: Hub) -> None:
    credential = await create(admin, "mail")
    r = await admin.patch(
        f"/api/credentials/{credential['id']}", json={"name": "smtp", "type": "smtp", "fields": {"apiKey": "k-1"}}
    )
    assert r.status_code == 200
    updated = r.json()["credential"]
    assert (updated["name"], updated["type"], updated["fieldNames"]) == ("smtp", "smtp", ["apiKey"])
    assert updated["createdAt"] == credential["createdAt"] and updated["updatedAt"] > credential["updatedAt"]
    blob = await stored_blob(hub, credential["id"])
    assert decrypt_fields(credentials_key(hub.secret_key), blob, credential_context(credential["id"])) == {
        "apiKey": "k-1"
    }

    # Without `fields`, the stored values are kept.
    await admin.patch(f"/api/credentials/{credential['id']}", json={"type": "relay"})
    blob = await stored_blob(hub, credential["id"])
    assert decrypt_fields(credentials_key(hub.secret_key), blob, credential_context(credential["id"])) == {
        "apiKey": "k-1"
    }


async def test_duplicate_names_conflict(admin: httpx.AsyncClient) -> None:
    await create(admin, "taken")
    other = await create(admin, "other")
    r = await admin.post("/api/credentials", json={"name": "taken", "fields": {"a": "b"}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = await admin.patch(f"/api/credentials/{other['id']}", json={"name": "taken"})
    assert r.status_code == 409
    assert (await admin.get(f"/api/credentials/{other['id']}")).json()["credential"]["name"] == "other"


async def test_delete_removes_it(admin: httpx.AsyncClient) -> None:
    credential = await create(admin, "doomed")
    r = await admin.delete(f"/api/credentials/{credential['id']}")
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert (await admin.get(f"/api/credentials/{credential['id']}")).status_code == 404
    assert (await admin.delete(f"/api/credentials/{credential['id']}")).status_code == 404
    assert (await admin.get("/api/credentials")).json()["total"] == 0


def _reading(name: str) -> dict[str, Any]:
    return {
        "nodes": [{"id": "use", "activity": "log.message", "params": {"message": f"{{{{ credentials.{name}.user }}}}"}}]
    }


async def _workflow(admin: httpx.AsyncClient, name: str, definition: dict[str, Any], *, publish: bool) -> str:
    r = await admin.post("/api/workflows", json={"name": name, "definition": definition})
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow"]["id"]
    if publish:
        assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200
    return workflow_id


async def test_the_list_shows_which_published_versions_reference_each_credential(admin: httpx.AsyncClient) -> None:
    await create(admin, "mail")
    await create(admin, "unused")
    workflow_id = await _workflow(admin, "mailer", _reading("mail"), publish=True)
    await _workflow(admin, "draft-only", _reading("unused"), publish=False)

    listed = {c["name"]: c["references"] for c in (await admin.get("/api/credentials")).json()["credentials"]}
    assert listed == {"mail": [{"workflowId": workflow_id, "workflowName": "mailer", "version": 1}], "unused": []}


async def test_delete_is_refused_while_a_published_version_references_it_unless_forced(
    admin: httpx.AsyncClient,
) -> None:
    credential = await create(admin, "mail")
    await _workflow(admin, "mailer", _reading("mail"), publish=True)

    r = await admin.delete(f"/api/credentials/{credential['id']}")
    assert r.status_code == 409
    assert "mailer v1" in r.json()["error"]["message"]
    assert r.json()["error"]["details"]["references"][0]["workflowName"] == "mailer"
    assert (await admin.get(f"/api/credentials/{credential['id']}")).status_code == 200

    r = await admin.delete(f"/api/credentials/{credential['id']}", params={"force": "true"})
    assert r.status_code == 200
    assert (await admin.get(f"/api/credentials/{credential['id']}")).status_code == 404
    entry = (await admin.get("/api/audit", params={"action": "credential.delete"})).json()["entries"][0]
    assert entry["details"]["forced"] is True and entry["details"]["references"][0]["version"] == 1


async def test_a_draft_reference_does_not_block_delete(admin: httpx.AsyncClient) -> None:
    credential = await create(admin, "mail")
    await _workflow(admin, "drafting", _reading("mail"), publish=False)
    assert (await admin.delete(f"/api/credentials/{credential['id']}")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"name": "x", "fields": {}},
        {"name": "has space", "fields": {"a": "b"}},
        {"name": "", "fields": {"a": "b"}},
        {"name": "x", "fields": {"bad key": "b"}},
        {"name": "x", "fields": {"a": 1}},
        {"name": "x", "type": "", "fields": {"a": "b"}},
        {"fields": {"a": "b"}},
    ],
)
async def test_invalid_bodies_are_422(admin: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await admin.post("/api/credentials", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


@pytest.mark.parametrize("body", [{"name": None}, {"fields": None}, {"fields": {}}, {"type": None}])
async def test_invalid_patches_are_422(admin: httpx.AsyncClient, body: dict[str, Any]) -> None:
    credential = await create(admin, "patched")
    assert (await admin.patch(f"/api/credentials/{credential['id']}", json=body)).status_code == 422


@pytest.mark.parametrize("ident", [UNKNOWN_ID, "not-an-id"])
@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PATCH", {"type": "x"}), ("DELETE", None)])
async def test_unknown_or_malformed_id_is_404(
    admin: httpx.AsyncClient, method: str, body: dict[str, Any] | None, ident: str
) -> None:
    r = await admin.request(method, f"/api/credentials/{ident}", json=body)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_changes_are_audited_without_values(make_client: ClientFactory, hub: Hub) -> None:
    developer = await make_client("DEVELOPER")
    developer_id = (await developer.get("/api/auth/me")).json()["user"]["id"]
    credential = await create(developer, "audited")
    await developer.patch(f"/api/credentials/{credential['id']}", json={"fields": {"password": SECRET + "x"}})
    await developer.delete(f"/api/credentials/{credential['id']}")

    rows = await audit_rows(hub)
    assert [(action, entity) for action, entity, _ in rows] == [
        ("credential.create", credential["id"]),
        ("credential.update", credential["id"]),
        ("credential.delete", credential["id"]),
    ]
    assert all(SECRET not in details and "robot" not in details for _, _, details in rows)
    async with hub.db.session() as session:
        actors = (
            await session.execute(text("SELECT DISTINCT actor_id FROM audit_log WHERE action LIKE 'credential.%'"))
        ).scalars()
        assert list(actors) == [developer_id]


# --- roles (SPEC §10.2): ADMIN and DEVELOPER only, reads included ---------------------------------

ROUTES: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("GET", "/api/credentials", None, 200),
    ("POST", "/api/credentials", {"name": "by-role", "fields": {"a": "b"}}, 201),
    ("GET", "/api/credentials/{id}", None, 200),
    ("PATCH", "/api/credentials/{id}", {"type": "changed"}, 200),
    ("DELETE", "/api/credentials/{id}", None, 200),
]


@pytest.mark.parametrize(("role", "denied"), [("ADMIN", None), ("DEVELOPER", None), ("OPERATOR", 403), (None, 401)])
async def test_role_matrix(
    make_client: ClientFactory, admin: httpx.AsyncClient, role: str | None, denied: int | None
) -> None:
    caller = await make_client(role)
    wrong = []
    for index, (method, path, body, ok) in enumerate(ROUTES):
        credential = await create(admin, f"matrix{index}")
        r = await caller.request(method, path.format(id=credential["id"]), json=body)
        expected = denied or ok
        if r.status_code != expected:
            wrong.append(f"{method} {path}: {r.status_code} (expected {expected}) {r.text}")
        assert SECRET not in r.text
    assert wrong == []
