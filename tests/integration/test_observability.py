"""Observability: `/metrics` histograms and counters (requests by route template, dispatch and pick-up latency,
executions finished by status, database statements, the pool), request ids, and JSON log lines that carry
the request's context."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from exekra.hub.context import Hub
from exekra.hub.observability import REGISTRY, JsonFormatter

from .conftest import SIMPLE_DEFINITION, HubWith, OnlineRunner
from .protocol import ProtocolRunner, publish_workflow, running_execution, sample


async def test_metrics_count_requests_by_route_template_and_executions_by_their_latencies_and_end(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    before = (await client.get("/metrics")).text
    workflow_id = await publish_workflow(admin, "observed", SIMPLE_DEFINITION)
    runner = await ProtocolRunner.register(admin, client, "observed-runner")
    await runner.auth()
    execution_id = await running_execution(admin, runner, workflow_id)
    for _ in range(3):
        assert (await admin.get(f"/api/executions/{execution_id}")).status_code == 200
    assert (await runner.complete(execution_id, 1, "COMPLETED")).status_code == 200
    after = (await client.get("/metrics")).text

    route = {"method": "GET", "route": "/api/executions/{execution_id}", "status": "2xx"}
    grown = sample(after, "exekra_http_request_duration_seconds_count", **route) - sample(
        before, "exekra_http_request_duration_seconds_count", **route
    )
    assert grown == 3  # by template: three reads of one execution, not three series of ids
    assert execution_id not in after
    for name in ("exekra_dispatch_latency_seconds_count", "exekra_pickup_latency_seconds_count"):
        assert sample(after, name) == sample(before, name) + 1
    completed = "exekra_executions_finished_total"
    assert sample(after, completed, status="COMPLETED") == sample(before, completed, status="COMPLETED") + 1
    assert sample(after, "exekra_db_statement_duration_seconds_count") > sample(
        before, "exekra_db_statement_duration_seconds_count"
    )
    assert sample(after, "exekra_db_pool_connections", state="in_use") >= 0
    assert 'exekra_db_pool_connections{state="waiting"}' in after


async def test_a_request_id_is_made_or_taken_and_echoed(client: httpx.AsyncClient) -> None:
    made = await client.get("/api/health")
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["x-request-id"])
    again = await client.get("/api/health")
    assert re.fullmatch(r"[0-9a-f]{16}", again.headers["x-request-id"])
    assert again.headers["x-request-id"] != made.headers["x-request-id"]
    taken = await client.get("/api/health", headers={"X-Request-ID": "lb-7f3a"})
    assert taken.headers["x-request-id"] == "lb-7f3a"
    too_long = await client.get("/api/health", headers={"X-Request-ID": "x" * 65})
    assert too_long.headers["x-request-id"] != "x" * 65


async def test_the_access_log_in_json_names_the_request_the_caller_the_execution_and_the_latency(
    hub_with: HubWith, admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, online_runner: OnlineRunner
) -> None:
    runner = await online_runner("logged")
    workflow_id = await publish_workflow(admin, "logged", SIMPLE_DEFINITION, labels=["nowhere"])
    created = await admin.post("/api/executions", json={"workflowId": workflow_id})
    execution_id = created.json()["execution"]["id"]
    token = admin.headers["Authorization"]
    async with hub_with(access_log=True) as app:
        caplog.set_level(logging.INFO, logger="exekra.access")
        async with _client(app, token) as other:
            answer = await other.get(f"/api/executions/{execution_id}", headers={"X-Request-ID": "req-42"})
            assert answer.status_code == 200
            hook = await other.post("/api/webhooks/not-a-real-token", json={})
            assert hook.status_code == 404
        async with _client(app, f"Bearer {runner.token}") as runner_http:  # the runner protocol's own lane
            beat = await runner_http.post("/api/runner/heartbeat", json={}, headers={"X-Request-ID": "hb-1"})
            assert beat.status_code == 200 and beat.headers["x-request-id"] == "hb-1"
    records = [r for r in caplog.records if r.name == "exekra.access"]
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    read = next(line for line in lines if line.get("executionId") == execution_id)
    assert read["route"] == "/api/executions/{execution_id}" and read["status"] == 200
    assert read["method"] == "GET" and read["latencyMs"] > 0
    assert read["requestId"] == "req-42"
    assert read["caller"].startswith("user:")
    assert read["message"].startswith(f"GET /api/executions/{execution_id} 200 ")
    beat = next(line for line in lines if line["requestId"] == "hb-1")
    assert beat["route"] == "/api/runner/heartbeat" and beat["caller"] == f"runner:{runner.runner_id}"
    webhook = next(line for line in lines if line["route"].startswith("/api/webhooks"))
    assert "not-a-real-token" not in json.dumps(webhook)


def _client(app: FastAPI, authorization: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub.test", headers={"Authorization": authorization}
    )


async def test_the_grafana_dashboard_reads_only_metrics_the_hub_serves(client: httpx.AsyncClient) -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana" / "exekra-hub.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(exekra_[a-z_]+?)(?:_bucket|_count|_sum|_total)?\b", target["expr"])
    }
    # The live counts (always served) and the histograms and counters (served once they have a sample).
    served = set(re.findall(r"^# TYPE (exekra_[a-z_]+) ", (await client.get("/metrics")).text, re.MULTILINE))
    served |= {family.name for family in REGISTRY.collect()}
    assert len(used) >= 10 and used <= served, used - served
