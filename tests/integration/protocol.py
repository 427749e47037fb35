"""A protocol-level test runner: speaks SPEC §7.3 over plain HTTP, no agent logic."""

from __future__ import annotations

from typing import Any

import httpx


class ProtocolRunner:
    """One registered runner driven step by step by a test."""

    def __init__(self, http: httpx.AsyncClient, machine_key: str, machine_secret: str) -> None:
        self.http = http
        self.machine_key = machine_key
        self.machine_secret = machine_secret
        self.token: str | None = None
        self.runner_id: str | None = None

    @classmethod
    async def register(
        cls, admin: httpx.AsyncClient, http: httpx.AsyncClient, name: str, **fields: Any
    ) -> ProtocolRunner:
        r = await admin.post("/api/runners", json={"name": name, **fields})
        assert r.status_code == 201, r.text
        body = r.json()
        runner = cls(http, body["machineKey"], body["machineSecret"])
        runner.runner_id = body["runner"]["id"]
        return runner

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def auth(self) -> httpx.Response:
        r = await self.http.post(
            "/api/runner/auth",
            json={
                "machineKey": self.machine_key,
                "machineSecret": self.machine_secret,
                "hostname": "test",
                "os": "linux",
            },
        )
        if r.status_code == 200:
            self.token = r.json()["token"]
        return r

    async def heartbeat(self, **metrics: Any) -> httpx.Response:
        body = {"cpuPercent": 5.0, "memoryPercent": 40.0, "memoryUsedMb": 800, "diskPercent": 50, "diskFreeGb": 20}
        return await self.http.post("/api/runner/heartbeat", json={**body, **metrics}, headers=self.headers)

    async def poll(self, wait: float = 0) -> httpx.Response:
        return await self.http.get("/api/runner/poll", params={"wait": wait}, headers=self.headers, timeout=wait + 10)

    async def start(self, execution_id: str, attempt: int) -> httpx.Response:
        return await self.http.post(
            f"/api/runner/executions/{execution_id}/start", json={"attempt": attempt}, headers=self.headers
        )

    async def logs(self, execution_id: str, attempt: int, *messages: str) -> httpx.Response:
        lines = [{"level": "INFO", "message": m} for m in messages]
        return await self.http.post(
            f"/api/runner/executions/{execution_id}/logs",
            json={"attempt": attempt, "lines": lines},
            headers=self.headers,
        )

    async def complete(
        self, execution_id: str, attempt: int, status: str = "COMPLETED", **extra: Any
    ) -> httpx.Response:
        body = {"attempt": attempt, "status": status, **extra}
        return await self.http.post(f"/api/runner/executions/{execution_id}/complete", json=body, headers=self.headers)


async def publish_workflow(admin: httpx.AsyncClient, name: str, definition: dict[str, Any], **settings: Any) -> str:
    """Create and publish a workflow through the API; returns its id."""
    r = await admin.post("/api/workflows", json={"name": name, "definition": definition, **settings})
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow"]["id"]
    r = await admin.post(f"/api/workflows/{workflow_id}/publish")
    assert r.status_code == 200, r.text
    return workflow_id
