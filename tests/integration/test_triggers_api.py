"""Triggers (SPEC §7.1, §9): CRUD with roles, schedule validation, restarts on change, webhook tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from exekra.hub.audit.models import AuditEntry
from exekra.hub.context import Hub
from exekra.hub.triggers.models import Trigger

from .conftest import SIMPLE_DEFINITION, ClientFactory
from .protocol import publish_workflow


async def _schedule(admin: httpx.AsyncClient, workflow_id: str, **fields: Any) -> dict[str, Any]:
    body = {"workflowId": workflow_id, "type": "SCHEDULE", "name": "nightly", "cronExpression": "30 2 * * *", **fields}
    r = await admin.post("/api/triggers", json=body)
    assert r.status_code == 201, r.text
    trigger: dict[str, Any] = r.json()["trigger"]
    return trigger


async def _webhook(admin: httpx.AsyncClient, workflow_id: str, **fields: Any) -> dict[str, Any]:
    r = await admin.post("/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": "hook", **fields})
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_schedule_trigger_is_created_with_its_next_fire_time_in_its_timezone(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger = await _schedule(admin, workflow_id, timezone="Europe/Berlin", inputs={"x": 1})
    assert trigger["type"] == "SCHEDULE" and trigger["enabled"] is True
    assert trigger["cronExpression"] == "30 2 * * *" and trigger["timezone"] == "Europe/Berlin"
    assert trigger["inputs"] == {"x": 1} and trigger["lastFiredAt"] is None and trigger["lastError"] is None
    next_fire = _at(trigger["nextFireAt"])
    assert next_fire > datetime.now(UTC)
    local = next_fire.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) in ((2, 30), (3, 0))  # 03:00 only on a spring-forward day
    assert "token" not in trigger


async def test_schedule_timezone_defaults_to_utc(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger = await _schedule(admin, workflow_id, cronExpression="@hourly")
    assert trigger["timezone"] == "UTC" and trigger["cronExpression"] == "0 * * * *"
    assert _at(trigger["nextFireAt"]).minute == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cronExpression": "61 * * * *"}, "cronExpression: invalid minute field '61'"),
        ({"cronExpression": "* * * *"}, "cronExpression: cron expression needs 5 fields"),
        ({"cronExpression": "0 0 * * * *"}, "cronExpression: cron expression needs 5 fields"),
        ({"cronExpression": "0 0 31 2 *"}, "cronExpression: invalid day-of-month field '31'"),
        ({"cronExpression": "0 0 * * *", "timezone": "Mars/Olympus"}, "timezone: unknown timezone 'Mars/Olympus'"),
        ({"cronExpression": None}, "cronExpression is required for a SCHEDULE trigger"),
    ],
)
async def test_invalid_schedule_is_refused_with_the_reason(
    admin: httpx.AsyncClient, fields: dict[str, Any], message: str
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    body = {"workflowId": workflow_id, "type": "SCHEDULE", "name": "bad", **fields}
    r = await admin.post("/api/triggers", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_failed"
    assert message in r.json()["error"]["message"]


async def test_webhook_trigger_token_is_shown_once_and_stored_hashed(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    answer = await _webhook(admin, workflow_id)
    token = answer["token"]
    assert token.startswith("exw_") and len(token) >= 4 + 43  # 256 bits, URL-safe base64
    assert answer["url"] == f"http://testserver/api/webhooks/{token}"
    assert answer["trigger"]["nextFireAt"] is None and answer["trigger"]["cronExpression"] is None
    detail = (await admin.get(f"/api/triggers/{answer['trigger']['id']}")).json()
    assert token not in str(detail)
    async with hub.db.session() as session:
        stored = (await session.execute(select(Trigger.token_hash))).scalar_one()
    assert stored is not None and token not in stored and len(stored) == 64


async def test_webhook_trigger_takes_no_schedule(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    body = {"workflowId": workflow_id, "type": "WEBHOOK", "name": "w", "cronExpression": "* * * * *"}
    r = await admin.post("/api/triggers", json=body)
    assert r.status_code == 422
    trigger = (await _webhook(admin, workflow_id))["trigger"]
    r = await admin.patch(f"/api/triggers/{trigger['id']}", json={"cronExpression": "* * * * *"})
    assert r.status_code == 422


async def test_overlap_policy_defaults_to_allow_and_is_set_on_create_and_update(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    default = await _schedule(admin, workflow_id)
    assert default["overlapPolicy"] == "allow" and default["waitingFireAt"] is None
    assert default["lastSkippedAt"] is None and default["lastSkipReason"] is None

    skipping = await _schedule(admin, workflow_id, name="skipping", overlapPolicy="skip")
    assert skipping["overlapPolicy"] == "skip"
    r = await admin.patch(f"/api/triggers/{skipping['id']}", json={"overlapPolicy": "queue_one"})
    assert r.status_code == 200, r.text
    assert (await admin.get(f"/api/triggers/{skipping['id']}")).json()["trigger"]["overlapPolicy"] == "queue_one"


async def test_unknown_overlap_policy_and_a_webhook_with_one_are_refused(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    body = {"workflowId": workflow_id, "type": "SCHEDULE", "name": "s", "cronExpression": "* * * * *"}
    r = await admin.post("/api/triggers", json={**body, "overlapPolicy": "sometimes"})
    assert r.status_code == 422 and "overlapPolicy" in r.json()["error"]["message"]
    schedule = await _schedule(admin, workflow_id)
    r = await admin.patch(f"/api/triggers/{schedule['id']}", json={"overlapPolicy": None})
    assert r.status_code == 422

    r = await admin.post(
        "/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": "w", "overlapPolicy": "skip"}
    )
    assert r.status_code == 422
    assert "overlapPolicy are only for SCHEDULE triggers" in r.json()["error"]["message"]
    webhook = (await _webhook(admin, workflow_id))["trigger"]
    assert webhook["overlapPolicy"] == "allow"
    r = await admin.patch(f"/api/triggers/{webhook['id']}", json={"overlapPolicy": "skip"})
    assert r.status_code == 422


async def test_trigger_for_unknown_workflow_is_not_found(admin: httpx.AsyncClient) -> None:
    body = {"workflowId": "00000000-0000-0000-0000-000000000000", "type": "WEBHOOK", "name": "w"}
    assert (await admin.post("/api/triggers", json=body)).status_code == 404
    assert (await admin.post("/api/triggers", json={**body, "workflowId": "nope"})).status_code == 404
    assert (await admin.get("/api/triggers/nope")).status_code == 404


async def test_update_restarts_the_schedule_and_disable_clears_it(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger = await _schedule(admin, workflow_id, cronExpression="0 0 1 1 *")
    assert _at(trigger["nextFireAt"]).month == 1

    r = await admin.patch(f"/api/triggers/{trigger['id']}", json={"cronExpression": "* * * * *"})
    assert r.status_code == 200, r.text
    changed = r.json()["trigger"]
    assert changed["cronExpression"] == "* * * * *"
    assert (_at(changed["nextFireAt"]) - datetime.now(UTC)).total_seconds() <= 61

    r = await admin.patch(f"/api/triggers/{trigger['id']}", json={"enabled": False})
    assert r.json()["trigger"]["enabled"] is False and r.json()["trigger"]["nextFireAt"] is None
    r = await admin.patch(f"/api/triggers/{trigger['id']}", json={"enabled": True, "timezone": "Asia/Kolkata"})
    assert r.json()["trigger"]["nextFireAt"] is not None and r.json()["trigger"]["timezone"] == "Asia/Kolkata"

    r = await admin.patch(f"/api/triggers/{trigger['id']}", json={"cronExpression": "nope"})
    assert r.status_code == 422
    r = await admin.patch(f"/api/triggers/{trigger['id']}", json={"name": None})
    assert r.status_code == 422


async def test_list_filters_by_workflow_and_type(admin: httpx.AsyncClient) -> None:
    first = await publish_workflow(admin, "first", SIMPLE_DEFINITION)
    second = await publish_workflow(admin, "second", SIMPLE_DEFINITION)
    await _schedule(admin, first, name="a")
    await _webhook(admin, first, name="b")
    await _webhook(admin, second, name="c")
    everything = (await admin.get("/api/triggers")).json()
    assert [t["name"] for t in everything["triggers"]] == ["a", "b", "c"] and everything["total"] == 3
    assert everything["page"] == 1 and everything["nextCursor"] is None
    of_first = (await admin.get("/api/triggers", params={"workflowId": first})).json()
    assert [t["name"] for t in of_first["triggers"]] == ["a", "b"]
    webhooks = (await admin.get("/api/triggers", params={"type": "WEBHOOK", "limit": 1})).json()
    assert [t["name"] for t in webhooks["triggers"]] == ["b"] and webhooks["total"] == 2
    assert (await admin.get("/api/triggers", params={"type": "CRON"})).status_code == 422


async def test_rotate_token_replaces_the_old_one(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    answer = await _webhook(admin, workflow_id)
    trigger_id, old = answer["trigger"]["id"], answer["token"]
    r = await admin.post(f"/api/triggers/{trigger_id}/rotate-token")
    assert r.status_code == 200, r.text
    new = r.json()["token"]
    assert new != old and r.json()["url"].endswith(new)
    assert (await client.post(f"/api/webhooks/{old}", json={})).status_code == 404
    assert (await client.post(f"/api/webhooks/{new}", json={})).status_code == 202
    schedule = await _schedule(admin, workflow_id)
    assert (await admin.post(f"/api/triggers/{schedule['id']}/rotate-token")).status_code == 409


async def test_delete_removes_the_trigger(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger = await _schedule(admin, workflow_id)
    assert (await admin.delete(f"/api/triggers/{trigger['id']}")).json() == {"ok": True}
    assert (await admin.get(f"/api/triggers/{trigger['id']}")).status_code == 404
    assert (await admin.delete(f"/api/triggers/{trigger['id']}")).status_code == 404


async def test_trigger_changes_are_audited(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    trigger = (await _webhook(admin, workflow_id))["trigger"]
    await admin.patch(f"/api/triggers/{trigger['id']}", json={"name": "renamed"})
    await admin.post(f"/api/triggers/{trigger['id']}/rotate-token")
    await admin.delete(f"/api/triggers/{trigger['id']}")
    async with hub.db.session() as session:
        rows = (
            await session.execute(select(AuditEntry).where(AuditEntry.entity_type == "trigger").order_by(AuditEntry.id))
        ).scalars()
        entries = [(e.action, e.actor_type, e.entity_id, e.details) for e in rows]
    assert [e[0] for e in entries] == ["trigger.create", "trigger.update", "trigger.rotate_token", "trigger.delete"]
    assert all(e[1] == "USER" and e[2] == trigger["id"] for e in entries)
    assert entries[0][3] == {"name": "hook", "type": "WEBHOOK", "workflowId": workflow_id}
    assert entries[1][3] == {"name": "renamed"}


@pytest.mark.parametrize("role", ["DEVELOPER", "OPERATOR", None])
async def test_trigger_roles(admin: httpx.AsyncClient, make_client: ClientFactory, role: str | None) -> None:
    """Reading: every signed-in role; writing: ADMIN and DEVELOPER (SPEC §7.1); anonymous: 401."""
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    existing = await _schedule(admin, workflow_id)
    caller = await make_client(role)
    reads = [await caller.get("/api/triggers"), await caller.get(f"/api/triggers/{existing['id']}")]
    body = {"workflowId": workflow_id, "type": "WEBHOOK", "name": "mine"}
    writes = [
        await caller.post("/api/triggers", json=body),
        await caller.patch(f"/api/triggers/{existing['id']}", json={"name": "x"}),
        await caller.post(f"/api/triggers/{existing['id']}/rotate-token"),
        await caller.delete(f"/api/triggers/{existing['id']}"),
    ]
    read_status = 200 if role else 401
    write_status = {"DEVELOPER": None, "OPERATOR": 403, None: 401}[role]
    assert [r.status_code for r in reads] == [read_status, read_status]
    if write_status is None:
        assert [r.status_code for r in writes] == [201, 200, 409, 200]
    else:
        assert [r.status_code for r in writes] == [write_status] * 4


async def test_trigger_routes_are_rate_limited_per_user(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/api/triggers")
    assert "X-RateLimit-Limit" in r.headers
