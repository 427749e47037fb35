"""The hub process's own edges: uvicorn believes no X-Forwarded-For unless proxies are trusted, and its access
log never shows a webhook's token."""

from __future__ import annotations

import json

import httpx

from .conftest import HubProcess, wait_until


def test_x_forwarded_for_from_localhost_is_ignored_without_trusted_proxies(
    api: httpx.Client, hub_process: HubProcess
) -> None:
    forged = {"X-Forwarded-For": "203.0.113.77"}
    body = {"email": "nobody-forwarded@e2e.test", "password": "not-a-password"}
    assert httpx.post(f"{hub_process.url}/api/auth/login", json=body, headers=forged).status_code == 401

    def failed_sign_in() -> dict[str, str] | None:
        entries = api.get("/api/audit", params={"action": "auth.login_failed"}).json()["entries"]
        return next((e for e in entries if e["details"]["email"] == body["email"]), None)

    entry = wait_until(failed_sign_in, 10, 0.1, "the failed sign-in in the audit log")
    assert entry["ip"] == "127.0.0.1"
    wait_until(lambda: "/api/auth/login" in hub_process.log_path.read_text(), 10, 0.1, "the access log line")
    assert "203.0.113.77" not in hub_process.log_path.read_text()


def test_the_access_log_redacts_webhook_tokens(hub_process: HubProcess) -> None:
    assert httpx.post(f"{hub_process.url}/api/webhooks/exw_TopSecretToken", json={}).status_code == 404
    wait_until(lambda: "/api/webhooks/[redacted]" in hub_process.log_path.read_text(), 10, 0.1, "the access log line")
    assert "TopSecretToken" not in hub_process.log_path.read_text()


def test_exekra_hub_writes_json_lines_and_the_access_line_names_request_route_and_latency(
    hub_process: HubProcess,
) -> None:
    answer = httpx.get(f"{hub_process.url}/api/health", headers={"X-Request-ID": "edge-json-1"})
    assert answer.headers["x-request-id"] == "edge-json-1"

    def access_line() -> dict[str, object] | None:
        lines = [json.loads(line) for line in hub_process.log_path.read_text().splitlines() if line.strip()]
        return next((line for line in lines if line.get("requestId") == "edge-json-1"), None)

    line = wait_until(access_line, 10, 0.1, "the access log line")  # every line parses as JSON
    assert line["logger"] == "exekra.access" and line["route"] == "/api/health" and line["status"] == 200
    assert isinstance(line["latencyMs"], float) and line["method"] == "GET"
