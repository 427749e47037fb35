"""Runner administration (SPEC §3, §7.1): register, read, edit, enable/disable, delete, metrics, new secrets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.auth.security import token_hash
from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION, UNKNOWN_ID
from .protocol import ProtocolRunner, publish_workflow


async def _register(admin: httpx.AsyncClient, name: str = "r1", **fields: Any) -> dict[str, Any]:
    r = await admin.post("/api/runners", json={"name": name, **fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _online(admin: httpx.AsyncClient, client: httpx.AsyncClient, name: str = "r1") -> ProtocolRunner:
    runner = await ProtocolRunner.register(admin, client, name)
    assert (await runner.auth()).status_code == 200
    assert (await runner.heartbeat()).status_code == 200
    return runner


# --- register and read ---------------------------------------------------------------------------------


async def test_register_returns_machine_key_and_secret_once(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/runners", json={"name": "build-01", "type": "linux", "labels": ["gpu", " big ", "gpu"]})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"runner", "machineKey", "machineSecret"}
    runner = body["runner"]
    assert runner["name"] == "build-01" and runner["type"] == "linux" and runner["labels"] == ["big", "gpu"]
    assert runner["status"] == "OFFLINE" and runner["enabled"] is True and runner["currentExecutionId"] is None
    assert runner["machineKey"] == body["machineKey"] and len(body["machineSecret"]) >= 43  # 256 bits

    secret = body["machineSecret"]
    for url in ("/api/runners", f"/api/runners/{runner['id']}"):
        read = await admin.get(url)
        assert read.status_code == 200 and secret not in read.text and "machineSecret" not in read.text


async def test_machine_secret_is_stored_only_as_a_hash(admin: httpx.AsyncClient, hub: Hub) -> None:
    body = await _register(admin)
    secret = body["machineSecret"]
    async with hub.db.session() as session:
        row = (await session.execute(text("SELECT r::text AS everything, secret_hash FROM runners r"))).one()
        audit = (await session.execute(text("SELECT string_agg(a::text, '') FROM audit_log a"))).scalar_one()
    assert secret not in row.everything and secret not in audit
    assert row.secret_hash == token_hash(secret)


async def test_register_duplicate_name_is_409_and_bad_body_is_422(admin: httpx.AsyncClient) -> None:
    await _register(admin, "twin")
    r = await admin.post("/api/runners", json={"name": "twin"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert (await admin.post("/api/runners", json={"name": ""})).status_code == 422
    assert (await admin.post("/api/runners", json={"name": "x", "labels": "gpu"})).status_code == 422


async def test_list_and_get_runners_with_status_filter(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    online = await _online(admin, client, "b-online")
    offline = (await _register(admin, "a-offline"))["runner"]
    await hub.executions.liveness.flush()  # signs of life are written once a second
    listed = (await admin.get("/api/runners")).json()
    assert [r["name"] for r in listed["runners"]] == ["a-offline", "b-online"]
    assert (listed["total"], listed["page"], listed["limit"]) == (2, 1, 50)
    only_online = (await admin.get("/api/runners", params={"status": "ONLINE"})).json()["runners"]
    assert [r["id"] for r in only_online] == [online.runner_id]
    assert (await admin.get("/api/runners", params={"status": "ASLEEP"})).status_code == 422

    detail = (await admin.get(f"/api/runners/{online.runner_id}")).json()["runner"]
    assert detail["status"] == "ONLINE" and detail["hostname"] == "test" and detail["os"] == "linux"
    assert detail["lastHeartbeatAt"] and detail["metrics"]["memoryPercent"] == 40.0
    assert (await admin.get(f"/api/runners/{offline['id']}")).json()["runner"]["lastHeartbeatAt"] is None


@pytest.mark.parametrize("runner_id", [UNKNOWN_ID, "not-a-uuid"])
async def test_unknown_or_malformed_runner_id_is_404_everywhere(admin: httpx.AsyncClient, runner_id: str) -> None:
    calls = [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("DELETE", "", None),
        ("POST", "/regenerate-secret", None),
        ("GET", "/metrics", None),
    ]
    for method, suffix, body in calls:
        r = await admin.request(method, f"/api/runners/{runner_id}{suffix}", json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, suffix)


# --- edit ----------------------------------------------------------------------------------------------


async def test_patch_changes_labels_type_name_and_enabled(admin: httpx.AsyncClient) -> None:
    runner_id = (await _register(admin, "edit-me", labels=["a"]))["runner"]["id"]
    r = await admin.patch(f"/api/runners/{runner_id}", json={"labels": ["z", "b"], "enabled": False})
    assert r.status_code == 200
    patched = r.json()["runner"]
    assert patched["labels"] == ["b", "z"] and patched["enabled"] is False and patched["name"] == "edit-me"
    r = await admin.patch(f"/api/runners/{runner_id}", json={"name": "renamed", "type": "windows"})
    assert r.json()["runner"]["labels"] == ["b", "z"] and r.json()["runner"]["type"] == "windows"
    detail = (await admin.get(f"/api/runners/{runner_id}")).json()["runner"]
    assert (detail["name"], detail["enabled"], detail["labels"]) == ("renamed", False, ["b", "z"])


async def test_patch_to_a_taken_name_is_409(admin: httpx.AsyncClient) -> None:
    await _register(admin, "taken")
    runner_id = (await _register(admin, "other"))["runner"]["id"]
    assert (await admin.patch(f"/api/runners/{runner_id}", json={"name": "taken"})).status_code == 409


async def test_disabled_runner_gets_no_work_until_enabled_again(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await _online(admin, client)
    assert (await admin.patch(f"/api/runners/{runner.runner_id}", json={"enabled": False})).status_code == 200
    created = await admin.post("/api/executions", json={"workflowId": workflow_id})
    execution_id = created.json()["execution"]["id"]
    assert (await runner.poll()).status_code == 204
    assert (await runner.poll(wait=0.3)).status_code == 204
    assert (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]["status"] == "QUEUED"

    assert (await admin.patch(f"/api/runners/{runner.runner_id}", json={"enabled": True})).status_code == 200
    polled = await runner.poll(wait=5)
    assert polled.status_code == 200 and polled.json()["execution"]["id"] == execution_id


# --- delete --------------------------------------------------------------------------------------------


async def test_delete_is_refused_while_the_runner_holds_an_execution(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await _online(admin, client)
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    assert (await runner.poll(wait=5)).status_code == 200
    r = await admin.delete(f"/api/runners/{runner.runner_id}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"

    await runner.start(execution_id, 1)
    await runner.complete(execution_id, 1)
    assert (await admin.delete(f"/api/runners/{runner.runner_id}")).status_code == 200
    assert (await admin.get(f"/api/runners/{runner.runner_id}")).status_code == 404
    assert (await runner.heartbeat()).status_code == 401  # its token died with it
    # The finished execution keeps its history.
    assert (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]["status"] == "COMPLETED"


# --- metrics -------------------------------------------------------------------------------------------


async def test_metrics_history_lists_each_heartbeat_in_order(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await _online(admin, client)  # first heartbeat: cpu 5
    await runner.heartbeat(cpuPercent=50.0, diskFreeGb=12.5)
    await runner.heartbeat(cpuPercent=75.0)
    # Written once a second, in one statement: every heartbeat's sample, not only the latest.
    assert await hub.executions.liveness.flush() == 1
    r = await admin.get(f"/api/runners/{runner.runner_id}/metrics")
    assert r.status_code == 200
    metrics = r.json()["metrics"]
    assert [m["cpuPercent"] for m in metrics] == [5.0, 50.0, 75.0]
    assert metrics[1]["diskFreeGb"] == 12.5 and metrics[0]["memoryUsedMb"] == 800.0
    assert [m["ts"] for m in metrics] == sorted(m["ts"] for m in metrics)
    # A poll is a sign of life, not a sample.
    await runner.poll()
    await hub.executions.liveness.flush()
    assert len((await admin.get(f"/api/runners/{runner.runner_id}/metrics")).json()["metrics"]) == 3


async def test_metrics_history_respects_from_and_to(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await _online(admin, client)
    await hub.executions.liveness.flush()
    await runner.heartbeat(cpuPercent=60.0)
    await hub.executions.liveness.flush()
    all_ts = [m["ts"] for m in (await admin.get(f"/api/runners/{runner.runner_id}/metrics")).json()["metrics"]]
    url = f"/api/runners/{runner.runner_id}/metrics"
    assert [m["cpuPercent"] for m in (await admin.get(url, params={"from": all_ts[1]})).json()["metrics"]] == [60.0]
    assert [m["cpuPercent"] for m in (await admin.get(url, params={"to": all_ts[1]})).json()["metrics"]] == [5.0]
    assert (await admin.get(url, params={"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"})).json() == {
        "metrics": []
    }
    assert (await admin.get(url, params={"from": "soon"})).status_code == 422


# --- regenerate-secret ---------------------------------------------------------------------------------


async def test_regenerate_secret_returns_a_new_secret_for_the_same_key(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await _online(admin, client)
    old_secret = runner.machine_secret
    r = await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")
    assert r.status_code == 200
    body = r.json()
    assert body["machineKey"] == runner.machine_key and body["runner"]["id"] == runner.runner_id
    assert body["machineSecret"] != old_secret
    async with hub.db.session() as session:
        stored = (await session.execute(text("SELECT secret_hash FROM runners"))).scalar_one()
    assert stored == token_hash(body["machineSecret"])
    assert (await runner.auth()).status_code == 401
    runner.machine_secret = body["machineSecret"]
    assert (await runner.auth()).status_code == 200


async def test_runner_administration_is_audited(admin: httpx.AsyncClient, hub: Hub) -> None:
    runner_id = (await _register(admin, "audited"))["runner"]["id"]
    await admin.patch(f"/api/runners/{runner_id}", json={"enabled": False})
    await admin.post(f"/api/runners/{runner_id}/regenerate-secret")
    await admin.delete(f"/api/runners/{runner_id}")
    me = (await admin.get("/api/auth/me")).json()["user"]["id"]
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                text("SELECT action, actor_type, actor_id FROM audit_log WHERE entity_id = :id ORDER BY id"),
                {"id": runner_id},
            )
        ).all()
    assert [r.action for r in rows] == ["runner.register", "runner.update", "runner.regenerate_secret", "runner.delete"]
    assert {(r.actor_type, r.actor_id) for r in rows} == {("USER", me)}
