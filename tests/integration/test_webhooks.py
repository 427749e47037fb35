"""POST /api/webhooks/{token} (SPEC §7.2): every answer, dedup, payload validation, limits, audit."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from exekra.hub.audit.models import AuditEntry
from exekra.hub.context import Hub
from exekra.hub.triggers.models import Trigger

from .conftest import SIMPLE_DEFINITION
from .protocol import publish_workflow

WITH_PAYLOAD: dict[str, Any] = {
    "inputs": {"payload": {"type": "object", "required": True}, "source": {"type": "string", "default": "web"}},
    **SIMPLE_DEFINITION,
}


async def _hook(admin: httpx.AsyncClient, definition: dict[str, Any] = WITH_PAYLOAD, **fields: Any) -> tuple[str, str]:
    """A published workflow with a webhook trigger: (trigger id, token)."""
    workflow_id = await publish_workflow(admin, f"wf-{uuid.uuid4().hex[:6]}", definition)
    body = {"workflowId": workflow_id, "type": "WEBHOOK", "name": "hook", **fields}
    r = await admin.post("/api/triggers", json=body)
    assert r.status_code == 201, r.text
    return r.json()["trigger"]["id"], r.json()["token"]


async def test_call_starts_the_workflow_with_the_body_as_payload(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    trigger_id, token = await _hook(admin, inputs={"source": "crm"})
    r = await client.post(f"/api/webhooks/{token}", json={"order": 42, "items": ["a"]})
    assert r.status_code == 202, r.text
    assert r.json() == {"executionId": r.json()["executionId"], "status": "QUEUED", "duplicate": False}
    execution = (await admin.get(f"/api/executions/{r.json()['executionId']}")).json()["execution"]
    assert execution["triggerType"] == "WEBHOOK" and execution["triggeredBy"] == trigger_id
    assert execution["inputs"] == {"payload": {"order": 42, "items": ["a"]}, "source": "crm"}
    trigger = (await admin.get(f"/api/triggers/{trigger_id}")).json()["trigger"]
    assert trigger["lastFiredAt"] is not None and trigger["lastError"] is None


async def test_call_is_audited_as_the_trigger(admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub) -> None:
    trigger_id, token = await _hook(admin)
    r = await client.post(f"/api/webhooks/{token}", json={})
    async with hub.db.session() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.entity_id == r.json()["executionId"]))
        ).scalar_one()
    assert (entry.action, entry.actor_type, entry.actor_id) == ("execution.create", "TRIGGER", trigger_id)
    assert entry.ip is not None and entry.details == {
        "workflowId": entry.details["workflowId"],
        "triggerType": "WEBHOOK",
    }


async def test_idempotency_key_returns_the_first_execution(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    _, token = await _hook(admin)
    first = await client.post(f"/api/webhooks/{token}", json={"n": 1}, headers={"Idempotency-Key": "evt-1"})
    again = await client.post(f"/api/webhooks/{token}", json={"n": 2}, headers={"Idempotency-Key": "evt-1"})
    other = await client.post(f"/api/webhooks/{token}", json={"n": 3}, headers={"Idempotency-Key": "evt-2"})
    plain = [await client.post(f"/api/webhooks/{token}", json={"n": 4}) for _ in range(2)]
    assert first.status_code == 202 and first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["executionId"] == first.json()["executionId"]
    assert other.status_code == 202 and other.json()["executionId"] != first.json()["executionId"]
    assert [r.status_code for r in plain] == [202, 202] and plain[0].json() != plain[1].json()


async def test_unknown_token_is_not_found(client: httpx.AsyncClient, hub: Hub) -> None:
    for token in ("exw_unknown", "x" * 5000):
        r = await client.post(f"/api/webhooks/{token}", json={})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_disabled_trigger_is_forbidden(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    trigger_id, token = await _hook(admin, enabled=False)
    r = await client.post(f"/api/webhooks/{token}", json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    await admin.patch(f"/api/triggers/{trigger_id}", json={"enabled": True})
    assert (await client.post(f"/api/webhooks/{token}", json={})).status_code == 202


async def test_body_over_one_mebibyte_is_too_large(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    _, token = await _hook(admin)
    big = b'{"blob": "' + b"x" * (1024 * 1024) + b'"}'
    r = await client.post(f"/api/webhooks/{token}", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_malformed_json_is_a_bad_request(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    _, token = await _hook(admin)
    r = await client.post(f"/api/webhooks/{token}", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Malformed JSON body"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "inputs: input 'payload' must be"),
        (b"", "inputs: input 'payload' is required"),
        (b"null", "inputs: input 'payload' is required"),
    ],
)
async def test_payload_is_validated_against_the_workflow_inputs(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, body: bytes, message: str
) -> None:
    trigger_id, token = await _hook(admin)
    r = await client.post(f"/api/webhooks/{token}", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith(message)
    async with hub.db.session() as session:
        trigger = await session.get(Trigger, uuid.UUID(trigger_id))
    assert trigger is not None and trigger.last_error is not None and trigger.last_error.startswith(message)


async def test_workflow_without_published_version_is_a_conflict_and_recorded(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    r = await admin.post("/api/workflows", json={"name": "drafty", "definition": SIMPLE_DEFINITION})
    workflow_id = r.json()["workflow"]["id"]
    r = await admin.post("/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": "h"})
    trigger_id, token = r.json()["trigger"]["id"], r.json()["token"]
    r = await client.post(f"/api/webhooks/{token}", json={})
    assert r.status_code == 409 and r.json()["error"]["message"] == "workflow drafty has no published version"
    trigger = (await admin.get(f"/api/triggers/{trigger_id}")).json()["trigger"]
    assert trigger["lastError"] == "workflow drafty has no published version"
    async with hub.db.session() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "trigger.fire_failed"))
        ).scalar_one()
    assert (entry.actor_type, entry.entity_id) == ("TRIGGER", trigger_id)


async def test_per_trigger_rate_limit_answers_429_with_retry_after(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "webhook_rate_per_minute", 3)
    _, token = await _hook(admin)
    _, other_token = await _hook(admin)
    answers = [await client.post(f"/api/webhooks/{token}", json={}) for _ in range(4)]
    assert [r.status_code for r in answers] == [202, 202, 202, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    # The limit is per trigger, and the user-facing limiter never counts webhook calls.
    assert (await client.post(f"/api/webhooks/{other_token}", json={})).status_code == 202
    assert "X-RateLimit-Limit" not in answers[0].headers


async def test_webhook_needs_no_user_authentication(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    _, token = await _hook(admin)
    r = await client.post(f"/api/webhooks/{token}", json={}, headers={"Authorization": "Bearer rubbish"})
    assert r.status_code == 202
