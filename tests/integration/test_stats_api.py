"""GET /api/stats: executions by status, the queue, runner utilisation, throughput and success rate."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.context import Hub
from exekra.hub.stats.service import bucket_starts, default_bucket

from .conftest import SIMPLE_DEFINITION, ClientFactory
from .protocol import ProtocolRunner, publish_workflow


async def run_to_end(admin: httpx.AsyncClient, runner: ProtocolRunner, workflow_id: str, status: str) -> str:
    execution_id: str = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"][
        "id"
    ]
    attempt = (await runner.poll(wait=5)).json()["execution"]["attempt"]
    await runner.start(execution_id, attempt)
    if status != "RUNNING":
        await runner.complete(execution_id, attempt, status, error="boom" if status == "FAILED" else None)
    return execution_id


async def test_stats_count_by_status_and_show_the_queue_and_runner_utilisation(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "work", SIMPLE_DEFINITION, labels=["w"])
    stranded = await publish_workflow(admin, "stranded", SIMPLE_DEFINITION, labels=["nowhere"])
    worker = await ProtocolRunner.register(admin, client, "worker", labels=["w"])
    await worker.auth()
    idle = await ProtocolRunner.register(admin, client, "idle", labels=["other"])
    await idle.auth()
    await idle.heartbeat()
    await ProtocolRunner.register(admin, client, "never-seen")
    for status in ("COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "STOPPED", "RUNNING"):
        await run_to_end(admin, worker, workflow_id, status)
    for _ in range(2):
        await admin.post("/api/executions", json={"workflowId": stranded})
    await admin.patch(f"/api/runners/{idle.runner_id}", json={"enabled": False})

    r = await admin.get("/api/stats")
    assert r.status_code == 200
    stats = r.json()["stats"]
    assert stats["executions"]["byStatus"] == {
        "QUEUED": 2,
        "ASSIGNED": 0,
        "RUNNING": 1,
        "COMPLETED": 3,
        "FAILED": 1,
        "STOPPED": 1,
    }
    assert (stats["executions"]["total"], stats["executions"]["totalIsEstimate"]) == (8, False)
    assert stats["queue"]["mode"] == "direct" and stats["queue"]["depth"] == 2
    assert datetime.fromisoformat(stats["queue"]["oldestQueuedAt"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert stats["runners"] == {
        "online": 1,
        "busy": 1,
        "offline": 1,
        "disabled": 1,
        "total": 3,
        "utilisation": 0.5,
    }
    throughput = stats["throughput"]
    assert throughput["bucketMinutes"] == 60 and len(throughput["buckets"]) == 24
    assert (throughput["finished"], throughput["successRate"]) == (5, 0.75)
    last = throughput["buckets"][-1]
    assert (last["completed"], last["failed"], last["stopped"], last["successRate"]) == (3, 1, 1, 0.75)
    assert all(b["successRate"] is None for b in throughput["buckets"][:-1])


async def test_finished_executions_count_in_the_bucket_they_finished_in(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "old", SIMPLE_DEFINITION)
    worker = await ProtocolRunner.register(admin, client, "worker")
    await worker.auth()
    two_hours_ago = await run_to_end(admin, worker, workflow_id, "COMPLETED")
    two_days_ago = await run_to_end(admin, worker, workflow_id, "FAILED")
    finished: dict[str, datetime] = {}
    async with hub.db.transaction() as session:
        for execution_id, age in ((two_hours_ago, timedelta(hours=2)), (two_days_ago, timedelta(days=2))):
            done = finished[execution_id] = datetime.now(UTC) - age
            await session.execute(
                text("UPDATE executions SET created_at = :created, completed_at = :done WHERE id = :id"),
                {"created": done - timedelta(minutes=1), "done": done, "id": execution_id},
            )
    stats = (await admin.get("/api/stats", params={"hours": 6, "bucketMinutes": 60})).json()["stats"]
    buckets = stats["throughput"]["buckets"]
    assert len(buckets) == 6
    # In the bucket that holds its end: 2 or 3 before the current one, as the hour turned between the two reads or not.
    starts = [datetime.fromisoformat(b["start"]) for b in buckets]
    holds = [int(start <= finished[two_hours_ago] < start + timedelta(hours=1)) for start in starts]
    assert holds in ([0, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0])
    assert [b["completed"] for b in buckets] == holds
    assert stats["executions"]["byStatus"]["FAILED"] == 0  # finished before the window
    week = (await admin.get("/api/stats", params={"hours": 168})).json()["stats"]
    assert week["executions"]["byStatus"]["FAILED"] == 1
    assert week["throughput"]["bucketMinutes"] == 360


@pytest.mark.parametrize(
    ("params", "buckets", "minutes"),
    [({"hours": 1}, 12, 5), ({"hours": 6}, 24, 15), ({"hours": 2, "bucketMinutes": 10}, 12, 10)],
)
async def test_the_window_and_bucket_size_can_be_chosen(
    admin: httpx.AsyncClient, params: dict[str, int], buckets: int, minutes: int
) -> None:
    throughput = (await admin.get("/api/stats", params=params)).json()["stats"]["throughput"]
    assert (len(throughput["buckets"]), throughput["bucketMinutes"]) == (buckets, minutes)
    starts = [datetime.fromisoformat(b["start"]) for b in throughput["buckets"]]
    assert all(b - a == timedelta(minutes=minutes) for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hours": 0}, "query.hours"),
        ({"hours": 169}, "query.hours"),
        ({"bucketMinutes": 0}, "query.bucketMinutes"),
        ({"hours": 168, "bucketMinutes": 1}, "at most 1000 buckets"),
    ],
)
async def test_bad_parameters_are_422(admin: httpx.AsyncClient, params: dict[str, int], message: str) -> None:
    r = await admin.get("/api/stats", params=params)
    assert r.status_code == 422
    assert message in r.json()["error"]["message"]


@pytest.mark.parametrize("role", ["ADMIN", "DEVELOPER", "OPERATOR"])
async def test_every_role_may_read_the_stats_and_is_rate_limited(make_client: ClientFactory, role: str) -> None:
    c = await make_client(role)
    r = await c.get("/api/stats")
    assert r.status_code == 200
    assert "X-RateLimit-Limit" in r.headers


async def test_stats_need_a_signed_in_user(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/stats")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"


def test_buckets_are_aligned_and_end_with_the_current_one() -> None:
    now = datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)
    starts = bucket_starts(now, timedelta(hours=24), timedelta(hours=1))
    assert len(starts) == 24
    assert starts[-1] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert starts[0] == datetime(2024, 4, 30, 13, 0, tzinfo=UTC)
    five = bucket_starts(now, timedelta(minutes=7), timedelta(minutes=5))
    assert five == [datetime(2024, 5, 1, 12, 25, tzinfo=UTC), datetime(2024, 5, 1, 12, 30, tzinfo=UTC)]
    assert [default_bucket(timedelta(hours=h)) for h in (1, 6, 24, 168)] == [
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=6),
    ]
