"""The licence (SPEC §10.7, issue 16 §1): status and upload, binding to the hub id and an ADMIN, the runner cap,
expiry, replacement at run time, several hub processes, the banner, and community mode."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import text

from exekra.client import AsyncExekraClient
from exekra.client import ValidationFailed as ClientValidationFailed
from exekra.hub.context import Hub
from exekra.hub.credentials.crypto import (
    LICENSE_CONTEXT,
    SEALED_V1,
    credential_context,
    credentials_key,
    decrypt_fields,
    encrypt_fields,
)
from exekra.hub.license.envelope import LicenseTerms, sign

from .conftest import ADMIN_EMAIL, ClientFactory, HubWith
from .protocol import ProtocolRunner, eventually, post_form

LicenseFactory = Any


@pytest.fixture
async def hub_id(admin: httpx.AsyncClient) -> str:
    r = await admin.get("/api/license")
    assert r.status_code == 200, r.text
    return str(r.json()["license"]["hubId"])


@pytest.fixture
def issue(license_authority: Ed25519PrivateKey, hub_id: str) -> LicenseFactory:
    """`issue(**terms)` → the text of a `.lic` file signed by the suite's authority (for this hub by default)."""

    def make(key: Ed25519PrivateKey | None = None, **changes: Any) -> str:
        terms: dict[str, Any] = {
            "licensee": "ACME Corp",
            "email": ADMIN_EMAIL,
            "max_runners": 2,
            "expires_at": date.today() + timedelta(days=365),
            "hub_id": hub_id,
            "edition": "enterprise",
            "trial": False,
            "issued_at": datetime.now(UTC).replace(microsecond=0),
            **changes,
        }
        return sign(LicenseTerms(**terms), key or license_authority)

    return make


async def _install(c: httpx.AsyncClient, licence: str) -> httpx.Response:
    return await c.post("/api/license", json={"license": licence})


async def _register(admin: httpx.AsyncClient, name: str) -> httpx.Response:
    return await admin.post("/api/runners", json={"name": name})


async def _audit(hub: Hub, action: str) -> list[Any]:
    async with hub.db.session() as session:
        rows = await session.execute(
            text("SELECT actor_type, actor_id, entity_id, details FROM audit_log WHERE action = :a ORDER BY id"),
            {"a": action},
        )
        return list(rows.all())


# --- community mode ------------------------------------------------------------------------------------------


async def test_community_mode_has_no_runner_cap_and_shows_the_hub_id(
    admin: httpx.AsyncClient, make_client: ClientFactory
) -> None:
    r = await admin.get("/api/license")
    body = r.json()["license"]
    assert body["status"] == "community" and body["hubId"].startswith("hub_")
    assert body["maxRunners"] is None and body["expiresAt"] is None and body["daysLeft"] is None
    for n in range(6):
        assert (await _register(admin, f"free-{n}")).status_code == 201
    operator = await make_client("OPERATOR")
    again = (await operator.get("/api/license")).json()["license"]
    assert again["hubId"] == body["hubId"] and again["runners"] == 6  # made once, kept
    page = (await admin.get("/")).text
    assert "Community edition" in page and 'id="licence-banner"' not in page


async def test_anyone_signed_in_reads_the_status_and_only_an_admin_installs(
    make_client: ClientFactory, issue: LicenseFactory
) -> None:
    anonymous = await make_client(None)
    assert (await anonymous.get("/api/license")).status_code == 401
    developer = await make_client("DEVELOPER")
    assert (await developer.get("/api/license")).status_code == 200
    r = await _install(developer, issue())
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


# --- installing ----------------------------------------------------------------------------------------------


async def test_a_valid_licence_takes_effect_and_is_audited(
    admin: httpx.AsyncClient, hub: Hub, issue: LicenseFactory, hub_id: str
) -> None:
    expires = date.today() + timedelta(days=100)
    r = await _install(admin, issue(max_runners=7, expires_at=expires, trial=True))
    assert r.status_code == 200, r.text
    body = r.json()["license"]
    assert {k: body[k] for k in ("status", "licensee", "email", "maxRunners", "expiresAt", "hubId", "trial")} == {
        "status": "active",
        "licensee": "ACME Corp",
        "email": ADMIN_EMAIL,
        "maxRunners": 7,
        "expiresAt": expires.isoformat(),
        "hubId": hub_id,
        "trial": True,
    }
    assert body["daysLeft"] == 100
    assert (await admin.get("/api/license")).json() == r.json()
    [(actor_type, _, entity, details)] = await _audit(hub, "license.install")
    assert actor_type == "USER" and entity == hub_id and details["maxRunners"] == 7 and details["replaced"] is None


async def test_the_licence_is_stored_encrypted(admin: httpx.AsyncClient, hub: Hub, issue: LicenseFactory) -> None:
    licence = issue(licensee="Sealed Ltd")
    assert (await _install(admin, licence)).status_code == 200
    async with hub.db.session() as session:
        stored = (await session.execute(text("SELECT license_sealed FROM installation"))).scalar_one()
    assert b"Sealed Ltd" not in stored and json.loads(licence)["signature"].encode() not in stored


async def test_the_sealed_licence_is_bound_to_its_purpose(
    admin: httpx.AsyncClient, hub: Hub, issue: LicenseFactory
) -> None:
    licence = issue(licensee="Bound Ltd")
    assert (await _install(admin, licence)).status_code == 200
    async with hub.db.session() as session:
        stored = (await session.execute(text("SELECT license_sealed FROM installation"))).scalar_one()
    key = credentials_key(hub.secret_key)
    assert stored.startswith(SEALED_V1)
    assert decrypt_fields(key, stored, LICENSE_CONTEXT) == {"license": licence}
    # The same text sealed as a credential's fields (another purpose) is not taken for the installed licence.
    as_credential = encrypt_fields(key, {"license": licence}, credential_context(uuid.uuid4()))
    async with hub.db.transaction() as session:
        await session.execute(text("UPDATE installation SET license_sealed = :blob"), {"blob": as_credential})
    status = await hub.licensing.reload()
    assert status.terms is None and status.problem and "cannot be decrypted" in status.problem


async def test_a_tampered_licence_is_refused(admin: httpx.AsyncClient, issue: LicenseFactory) -> None:
    envelope = json.loads(issue(max_runners=2))
    envelope["license"]["maxRunners"] = 200
    r = await _install(admin, json.dumps(envelope))
    assert r.status_code == 422 and r.json()["error"]["code"] == "license_invalid"
    assert "signature does not verify" in r.json()["error"]["message"]
    r = await _install(admin, "-----BEGIN SOMETHING-----")
    assert r.status_code == 422 and r.json()["error"]["code"] == "license_invalid"
    assert (await admin.get("/api/license")).json()["license"]["status"] == "community"


async def test_a_licence_signed_with_another_key_is_refused(admin: httpx.AsyncClient, issue: LicenseFactory) -> None:
    r = await _install(admin, issue(key=Ed25519PrivateKey.generate()))
    assert r.status_code == 422 and r.json()["error"]["code"] == "license_invalid"


async def test_a_licence_for_another_hub_id_is_refused(
    admin: httpx.AsyncClient, issue: LicenseFactory, hub_id: str
) -> None:
    r = await _install(admin, issue(hub_id="hub_somewhere_else"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "license_hub_mismatch"
    assert "hub_somewhere_else" in r.json()["error"]["message"] and hub_id in r.json()["error"]["message"]


async def test_a_licence_whose_email_is_no_admins_is_refused(
    admin: httpx.AsyncClient, make_client: ClientFactory, issue: LicenseFactory
) -> None:
    developer = await make_client("DEVELOPER")
    developer_email = (await developer.get("/api/auth/me")).json()["user"]["email"]
    for email in ("nobody@example.com", developer_email):
        r = await _install(admin, issue(email=email))
        assert r.status_code == 422 and r.json()["error"]["code"] == "license_email_mismatch", email
    assert (await _install(admin, issue(email=ADMIN_EMAIL.upper()))).status_code == 200  # emails match any case


async def test_an_already_expired_licence_is_refused(admin: httpx.AsyncClient, issue: LicenseFactory) -> None:
    r = await _install(admin, issue(expires_at=date.today() - timedelta(days=2)))
    assert r.status_code == 422 and r.json()["error"]["code"] == "license_invalid"
    assert "expired" in r.json()["error"]["message"]


# --- enforcement ---------------------------------------------------------------------------------------------


async def test_registration_past_the_limit_is_403_and_existing_runners_keep_working(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, issue: LicenseFactory
) -> None:
    first = await ProtocolRunner.online(admin, client, "first")
    second = await ProtocolRunner.online(admin, client, "second")
    third = await ProtocolRunner.online(admin, client, "third")
    assert (await _install(admin, issue(max_runners=2))).status_code == 200  # already over: nothing is stopped

    r = await _register(admin, "fourth")
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "license_limit" and "allows 2 runners" in error["message"]
    for runner in (first, second, third):
        assert (await runner.auth()).status_code == 200
        assert (await runner.heartbeat()).status_code == 200
    assert (await admin.get("/api/license")).json()["license"]["runners"] == 3


async def test_concurrent_registrations_never_pass_the_limit_together(
    admin: httpx.AsyncClient, issue: LicenseFactory
) -> None:
    assert (await _install(admin, issue(max_runners=3))).status_code == 200
    answers = await asyncio.gather(*(_register(admin, f"racer-{n}") for n in range(8)))
    assert sorted(r.status_code for r in answers) == [201] * 3 + [403] * 5


async def test_the_dashboard_refuses_a_runner_past_the_limit_with_the_reason(
    admin: httpx.AsyncClient, issue: LicenseFactory
) -> None:
    assert (await _install(admin, issue(max_runners=1))).status_code == 200
    assert (await _register(admin, "only")).status_code == 201
    r = await post_form(admin, "/runners", {"name": "one-too-many"}, page="/runners")
    assert r.status_code == 422 and "allows 1 runners" in r.text


async def test_an_expired_licence_refuses_new_runners_keeps_old_ones_and_says_so(
    admin: httpx.AsyncClient,
    client: httpx.AsyncClient,
    hub: Hub,
    hub_app: FastAPI,
    issue: LicenseFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expires = date.today() + timedelta(days=3)
    assert (await _install(admin, issue(max_runners=5, expires_at=expires))).status_code == 200
    runner = await ProtocolRunner.online(admin, client, "veteran")
    await hub_app.state.maintenance.revalidate_license()
    assert await _audit(hub, "license.status") == []  # no change: nothing recorded

    monkeypatch.setattr(hub.licensing, "today", lambda: expires + timedelta(days=1))
    body = (await admin.get("/api/license")).json()["license"]
    assert body["status"] == "expired" and body["daysLeft"] == -1
    r = await _register(admin, "newcomer")
    assert r.status_code == 403 and r.json()["error"]["code"] == "license_limit"
    assert f"expired on {expires.isoformat()}" in r.json()["error"]["message"]
    assert (await runner.auth()).status_code == 200 and (await runner.heartbeat()).status_code == 200
    banner = (await admin.get("/runners")).text
    assert 'id="licence-banner"' in banner and "banner-error" in banner and "expired" in banner

    for _ in range(2):  # recorded once, however often it is checked
        await hub_app.state.maintenance.revalidate_license()
    [(actor_type, _, _, details)] = await _audit(hub, "license.status")
    assert actor_type == "SYSTEM" and details["from"] == "active" and details["to"] == "expired"


async def test_an_installed_licence_that_no_longer_verifies_is_enforced_as_expired(
    admin: httpx.AsyncClient, hub: Hub, hub_app: FastAPI, issue: LicenseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await _install(admin, issue(max_runners=5))).status_code == 200
    # The hub now trusts another key (EXEKRA_LICENSE_PUBLIC_KEY changed): no fallback to the uncapped community mode.
    monkeypatch.setattr(hub.licensing, "public_key", Ed25519PrivateKey.generate().public_key())
    status = await hub_app.state.maintenance.revalidate_license()
    assert status.status == "expired" and status.problem and "not valid any more" in status.problem
    body = (await admin.get("/api/license")).json()["license"]
    assert body["status"] == "expired" and body["problem"] == status.problem and body["licensee"] is None
    r = await _register(admin, "refused")
    assert r.status_code == 403 and r.json()["error"]["code"] == "license_limit"
    assert "not valid any more" in r.json()["error"]["message"]
    [(_, _, _, details)] = await _audit(hub, "license.status")
    assert (details["from"], details["to"], details["problem"]) == ("active", "expired", status.problem)


@pytest.mark.parametrize(("days", "shown"), [(30, False), (14, True), (0, True)])
async def test_the_banner_shows_from_14_days_before_expiry(
    admin: httpx.AsyncClient, make_client: ClientFactory, issue: LicenseFactory, days: int, shown: bool
) -> None:
    expires = date.today() + timedelta(days=days)
    assert (await _install(admin, issue(expires_at=expires))).status_code == 200
    operator = await make_client("OPERATOR")
    for c in (admin, operator):
        page = (await c.get("/executions")).text
        assert ('id="licence-banner"' in page) is shown
        assert "Community edition" not in page
    if shown:
        assert expires.isoformat() in page and "banner-warn" in page


async def test_a_licence_replaced_at_run_time_takes_effect_at_once(
    admin: httpx.AsyncClient, hub: Hub, issue: LicenseFactory
) -> None:
    assert (await _install(admin, issue(licensee="Small", max_runners=1))).status_code == 200
    assert (await _register(admin, "a")).status_code == 201
    assert (await _register(admin, "b")).status_code == 403
    assert (await _install(admin, issue(licensee="Bigger", max_runners=3))).status_code == 200
    assert (await _register(admin, "b")).status_code == 201
    assert (await admin.get("/api/license")).json()["license"]["licensee"] == "Bigger"
    assert [row.details["replaced"] for row in await _audit(hub, "license.install")] == [None, "Small"]


async def test_the_licence_page_shows_the_hub_id_and_installs_an_upload(
    admin: httpx.AsyncClient, make_client: ClientFactory, issue: LicenseFactory, hub_id: str
) -> None:
    page = (await admin.get("/license")).text
    assert hub_id in page and 'id="install-licence"' in page and "Community edition" in page
    r = await post_form(admin, "/license", {"license": issue(licensee="Uploaded Inc")}, page="/license")
    assert r.status_code == 303
    page = (await admin.get("/license")).text
    assert "Licence of Uploaded Inc installed." in page and "0 of 2" in page
    r = await post_form(admin, "/license", {"license": issue(hub_id="hub_elsewhere")}, page="/license")
    assert "Licence refused" in (await admin.get(r.headers["location"])).text
    operator_page = (await (await make_client("OPERATOR")).get("/license")).text
    assert "Uploaded Inc" in operator_page and 'id="install-licence"' not in operator_page


async def test_the_sdk_reads_and_installs_the_licence(
    hub_app: FastAPI, admin: httpx.AsyncClient, issue: LicenseFactory, hub_id: str
) -> None:
    token = admin.headers["Authorization"].removeprefix("Bearer ")
    transport = httpx.ASGITransport(app=hub_app)
    async with AsyncExekraClient("http://testserver", token, transport=transport) as sdk:
        assert (await sdk.license()).status == "community"
        with pytest.raises(ClientValidationFailed) as refused:
            await sdk.install_license(issue(hub_id="hub_elsewhere"))
        assert refused.value.code == "license_hub_mismatch"
        installed = await sdk.install_license(issue(licensee="Via SDK", max_runners=4))
        assert (installed.status, installed.licensee, installed.max_runners, installed.hub_id) == (
            "active",
            "Via SDK",
            4,
            hub_id,
        )
        assert await sdk.license() == installed


# --- several hub processes -----------------------------------------------------------------------------------


@pytest.fixture
async def second_hub(hub_with: HubWith) -> AsyncIterator[tuple[httpx.AsyncClient, Hub]]:
    """Another hub process on the same database (its own pool, listener and copy of the licence): its client
    and its hub."""
    async with hub_with() as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, app.state.hub


async def test_two_hub_processes_both_see_a_new_licence_at_once(
    admin: httpx.AsyncClient, second_hub: tuple[httpx.AsyncClient, Hub], issue: LicenseFactory
) -> None:
    other_http, other = second_hub
    other_http.headers["Authorization"] = admin.headers["Authorization"]
    assert (await other_http.get("/api/license")).json()["license"]["status"] == "community"
    current = other.licensing.current()
    assert current is not None and current.status == "community"

    assert (await _install(admin, issue(max_runners=1, expires_at=date.today() + timedelta(days=5)))).status_code == 200

    # The other process's own copy (the banner's) follows the NOTIFY, with no request to it.
    async def other_sees_it() -> bool:
        status = other.licensing.current()
        return status is not None and status.status == "active"

    await eventually(other_sees_it, 5, "the second hub process to read the new licence")
    assert 'id="licence-banner"' in (await other_http.get("/runners")).text
    assert (await other_http.get("/api/license")).json()["license"]["maxRunners"] == 1
    assert (await _register(other_http, "one")).status_code == 201
    r = await _register(other_http, "two")
    assert r.status_code == 403 and r.json()["error"]["code"] == "license_limit"
