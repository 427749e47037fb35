"""Every way an execution starts or stops goes through the execution service: repeated keys are answered the
same way whichever path brought them, and a stop leaves Redis and PostgreSQL in the same state whoever made it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text, update

from exekra.embedded import EmbeddedRedis
from exekra.hub.audit.service import SYSTEM
from exekra.hub.dispatch.queue import RedisQueue
from exekra.hub.triggers import firing
from exekra.hub.triggers.models import Trigger

from ..protocol import eventually, post_form
from .conftest import RunningHub


def _queue(hub: RunningHub) -> RedisQueue:
    queue = hub.dispatcher.queue
    assert queue is not None
    return queue


async def _mirrored(hub: RunningHub, workflow_id: str, key: str) -> str | None:
    """The execution the Redis duplicate mirror holds for a key, and checks it expires within the hub's window."""
    queue = _queue(hub)
    redis_key = queue.dedup_key(uuid.UUID(workflow_id), key)
    ttl_ms = await queue.redis.pttl(redis_key)
    if ttl_ms < 0:
        return None
    assert ttl_ms <= hub.hub.settings.dedup_window_seconds * 1000
    found = await queue.redis.get(redis_key)
    return str(found) if found is not None else None


async def _execution_count(hub: RunningHub) -> int:
    async with hub.hub.db.session() as session:
        return int((await session.execute(text("SELECT count(*) FROM executions"))).scalar_one())


async def _via_api_body(hub: RunningHub, workflow_id: str, key: str) -> tuple[str, bool]:
    r = await hub.admin.post("/api/executions", json={"workflowId": workflow_id, "idempotencyKey": key})
    assert r.status_code in (200, 201), r.text
    return r.json()["execution"]["id"], r.json()["duplicate"]


async def _via_api_header(hub: RunningHub, workflow_id: str, key: str) -> tuple[str, bool]:
    r = await hub.admin.post("/api/executions", json={"workflowId": workflow_id}, headers={"Idempotency-Key": key})
    assert r.status_code in (200, 201), r.text
    return r.json()["execution"]["id"], r.json()["duplicate"]


async def _via_dashboard(hub: RunningHub, workflow_id: str, key: str) -> tuple[str, bool]:
    before = await _execution_count(hub)
    page = f"/workflows/{workflow_id}"
    r = await post_form(hub.admin, f"{page}/run", {"idempotencyKey": key}, page=page)
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1], await _execution_count(hub) == before


async def _via_webhook(hub: RunningHub, workflow_id: str, key: str) -> tuple[str, bool]:
    """A call of a new webhook trigger of the workflow: keys belong to the workflow, whichever trigger calls."""
    body = {"workflowId": workflow_id, "type": "WEBHOOK", "name": f"hook-{uuid.uuid4().hex[:8]}"}
    created = await hub.admin.post("/api/triggers", json=body)
    assert created.status_code == 201, created.text
    r = await hub.http.post(f"/api/webhooks/{created.json()['token']}", json={}, headers={"Idempotency-Key": key})
    assert r.status_code in (200, 202), r.text
    return r.json()["executionId"], r.json()["duplicate"]


PATHS: dict[str, Any] = {
    "api-body": (_via_api_body, lambda key: key),
    "api-header": (_via_api_header, lambda key: key),
    "dashboard": (_via_dashboard, lambda key: key),
    "webhook": (_via_webhook, lambda key: f"webhook:{key}"),
}


@pytest.mark.parametrize("mode", ["redis", "direct"])
@pytest.mark.parametrize("path", sorted(PATHS))
async def test_a_repeated_key_answers_with_the_first_execution_whichever_way_it_came(
    hub: RunningHub, redis_server: EmbeddedRedis, path: str, mode: str
) -> None:
    create, stored_key = PATHS[path]
    workflow_id = await hub.workflow()
    if mode == "direct":
        redis_server.kill()
        await eventually(lambda: _mode(hub, "direct"), 5, "direct mode")

    first, first_duplicate = await create(hub, workflow_id, "k-1")
    again, again_duplicate = await create(hub, workflow_id, "k-1")
    other, _ = await create(hub, workflow_id, "k-2")

    assert (first_duplicate, again_duplicate) == (False, True)
    assert again == first and other != first
    assert await _execution_count(hub) == 2
    if mode == "redis":  # the mirror holds the key, as for every other way in
        assert await _mirrored(hub, workflow_id, stored_key("k-1")) == first


async def test_a_schedule_fire_is_mirrored_like_any_other_key_and_answered_once(hub: RunningHub) -> None:
    workflow_id = await hub.workflow()
    body = {"workflowId": workflow_id, "type": "SCHEDULE", "name": "s", "cronExpression": "* * * * *"}
    trigger_id = uuid.UUID((await hub.admin.post("/api/triggers", json=body)).json()["trigger"]["id"])
    fire_time = datetime.fromisoformat("2031-01-01T00:00:00+00:00")

    async def fire() -> None:
        async with hub.hub.db.transaction() as session:
            await session.execute(update(Trigger).where(Trigger.id == trigger_id).values(next_fire_at=fire_time))
            await session.execute(text("DELETE FROM trigger_fires"))  # as if the process died before recording it
        await firing.fire_schedule(hub.hub.executions, firing.Due(trigger_id, fire_time), keep_fires_days=30)

    await fire()
    await fire()

    async with hub.hub.db.session() as session:
        ids = (await session.execute(text("SELECT id FROM executions"))).scalars().all()
    assert len(ids) == 1
    assert await _mirrored(hub, workflow_id, firing.schedule_key(trigger_id, fire_time)) == str(ids[0])


async def test_api_dashboard_and_maintenance_stops_leave_redis_and_postgresql_alike(hub: RunningHub) -> None:
    """No runner can take these (a label nobody has): each waits in Redis until it is stopped or times out."""
    workflow_id = await hub.workflow(labels=["nobody"])
    by_api, by_dashboard, by_maintenance, waiting = [await hub.create(workflow_id) for _ in range(4)]
    queue = _queue(hub)
    await eventually(lambda: _waiting(queue, 4), 5, "four executions in Redis")

    r = await hub.admin.post(f"/api/executions/{by_api}/stop")
    assert r.status_code == 200 and r.json()["execution"]["status"] == "STOPPED"
    page = f"/executions/{by_dashboard}"
    assert (await post_form(hub.admin, f"{page}/stop", {}, page=page)).status_code == 303
    async with hub.hub.db.transaction() as session:
        await session.execute(
            text("UPDATE executions SET queued_at = now() - interval '1 day' WHERE id = :id"), {"id": by_maintenance}
        )
    report = await hub.hub.executions.check_stale(not_before=None)
    assert report.executions["queue-timeout"] == 1

    assert [(await hub.execution(e))["status"] for e in (by_api, by_dashboard, by_maintenance, waiting)] == [
        "STOPPED",
        "STOPPED",
        "FAILED",
        "QUEUED",
    ]
    assert await queue.waiting_ids() == [uuid.UUID(waiting)]
    outcomes = {record["id"]: record["outcome"] for record in await queue.history("completed")}
    assert outcomes == {by_api: "gone: STOPPED", by_dashboard: "gone: STOPPED", by_maintenance: "gone: FAILED"}
    async with hub.hub.db.session() as session:
        audited = (
            await session.execute(
                text("SELECT entity_id, action, actor_type FROM audit_log WHERE action LIKE 'execution.%' ORDER BY id")
            )
        ).all()
    assert [(row.entity_id, row.action, row.actor_type) for row in audited if row.action != "execution.create"] == [
        (by_api, "execution.stop", "USER"),
        (by_dashboard, "execution.stop", "USER"),
        (by_maintenance, "execution.queue_timeout", SYSTEM.type),
    ]


async def _waiting(queue: RedisQueue, count: int) -> bool:
    return len(await queue.waiting_ids()) == count


async def _mode(hub: RunningHub, mode: str) -> bool:
    return await hub.queue_mode() == mode
