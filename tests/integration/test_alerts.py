"""Alerts (docs/alerts.md): rules, channels, the outbox and its delivery workers, on an injected clock.

The session's hub runs no alert worker (`alerts_enabled=False`); each test drives its own `AlertWorker`
pass by pass. Webhook and Slack messages go to a local HTTP receiver, mail to a local aiosmtpd server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import text

from exekra.hub import retention
from exekra.hub.alerts.worker import AlertWorker
from exekra.hub.context import Hub

from ..activities.mailservers import Inbox, free_port
from ..receiver import Receiver, http_receiver
from .conftest import SIMPLE_DEFINITION, HubWith
from .protocol import ProtocolRunner, publish_workflow

pytestmark = pytest.mark.timeout(120)


class Clock:
    """The workers' clock: starts at the real time, moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def worker(hub: Hub, clock: Clock) -> AsyncIterator[AlertWorker]:
    settings = hub.settings.model_copy(update={"alert_max_attempts": 3, "alert_retry_base_seconds": 10})
    worker = AlertWorker(hub.db, settings, hub.secret_key, clock)
    yield worker
    await worker.senders.aclose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
async def workflow_id(admin: httpx.AsyncClient) -> str:
    return await publish_workflow(admin, "invoices", SIMPLE_DEFINITION)


async def ended(hub: Hub, workflow_id: str, count: int, status: str = "FAILED", error: str | None = "boom") -> None:
    """`count` executions of the workflow that ended just now, written as the lifecycle leaves them."""
    async with hub.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO executions (id, workflow_id, version_id, status, priority, trigger_type, error,"
                " completed_at) SELECT gen_random_uuid(), w.id, v.id, :status, 5, 'API', :error, clock_timestamp()"
                " FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.published,"
                " generate_series(1, :count) WHERE w.id = :workflow"
            ),
            {"status": status, "error": error, "count": count, "workflow": uuid.UUID(workflow_id)},
        )


async def webhook(admin: httpx.AsyncClient, receiver: Receiver, name: str = "ops-hook") -> tuple[str, str]:
    """A WEBHOOK channel to the receiver: (its id, its signing secret)."""
    r = await admin.post("/api/alerts/channels", json={"name": name, "type": "WEBHOOK", "url": receiver.url + "/hook"})
    assert r.status_code == 201, r.text
    return r.json()["channel"]["id"], r.json()["secret"]


async def rule(admin: httpx.AsyncClient, channel_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "on failure", "channelId": channel_id, "events": ["FAILED"], "cooldownSeconds": 0, **fields}
    r = await admin.post("/api/alerts/rules", json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()["rule"]
    return created


async def deliveries(admin: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
    r = await admin.get("/api/alerts/deliveries", params={"limit": 200, **filters})
    assert r.status_code == 200, r.text
    listed: list[dict[str, Any]] = r.json()["deliveries"]
    return listed


async def test_a_failed_execution_reaches_the_webhook_signed_and_only_once(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, receiver: Receiver, workflow_id: str
) -> None:
    channel_id, secret = await webhook(admin, receiver)
    await rule(admin, channel_id, workflowId=workflow_id)
    await ended(hub, workflow_id, 1, error="invoice 42 is missing")

    assert await worker.run_once() == 1
    [call] = receiver.received
    payload = call.json()
    assert call.path == "/hook"
    assert call.signed_by(secret)
    assert not call.signed_by(secret + "x")
    assert call.headers["x-exekra-delivery"] == payload["id"]
    assert payload["kind"] == "ALERT" and payload["count"] == 1 and payload["rule"]["name"] == "on failure"
    [event] = payload["events"]
    assert event["type"] == "FAILED" and event["workflowName"] == "invoices"
    assert event["error"] == "invoice 42 is missing"
    assert "invoices failed" in payload["text"]

    assert await worker.run_once() == 0  # collected once: a second pass (or another process) adds nothing
    assert len(receiver.received) == 1
    [delivery] = await deliveries(admin)
    assert delivery["id"] == payload["id"] and delivery["status"] == "SENT" and delivery["attempts"] == 1
    assert delivery["history"][0]["ok"] is True and delivery["lastHttpStatus"] == 200


async def test_timeouts_and_stops_are_events_of_their_own(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, receiver: Receiver, workflow_id: str
) -> None:
    channel_id, _ = await webhook(admin, receiver)
    await rule(admin, channel_id, name="slow", events=["TIMEOUT"])
    await rule(admin, channel_id, name="stopped", events=["STOPPED"])
    await ended(hub, workflow_id, 1, error="timed out after 5 s")
    await ended(hub, workflow_id, 1, status="STOPPED", error=None)
    await ended(hub, workflow_id, 1, error="boom")  # FAILED: no rule wants it
    await ended(hub, workflow_id, 1, status="COMPLETED", error=None)

    await worker.run_once()
    by_rule = {c.json()["rule"]["name"]: c.json()["events"][0]["type"] for c in receiver.received}
    assert by_rule == {"slow": "TIMEOUT", "stopped": "STOPPED"}


async def test_a_rule_of_one_workflow_ignores_the_others_and_the_past(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, receiver: Receiver, workflow_id: str
) -> None:
    other = await publish_workflow(admin, "payroll", SIMPLE_DEFINITION)
    await ended(hub, workflow_id, 1)  # before the rule existed
    channel_id, _ = await webhook(admin, receiver)
    await rule(admin, channel_id, workflowId=workflow_id)
    await ended(hub, other, 3)
    await ended(hub, workflow_id, 1)

    await worker.run_once()
    assert [c.json()["events"][0]["workflowName"] for c in receiver.received] == ["invoices"]


async def test_a_thousand_failures_make_one_alert_and_one_digest_per_window(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, clock: Clock, receiver: Receiver, workflow_id: str
) -> None:
    channel_id, secret = await webhook(admin, receiver)
    await rule(admin, channel_id, cooldownSeconds=300)
    await ended(hub, workflow_id, 1000)

    await worker.run_once()
    assert [c.json()["kind"] for c in receiver.received] == ["ALERT"]

    clock.advance(299)
    await ended(hub, workflow_id, 11)
    await worker.run_once()
    assert len(receiver.received) == 1  # inside the window: gathered for the digest

    clock.advance(1)
    await worker.run_once()
    assert len(receiver.received) == 2
    digest = receiver.received[1]
    payload = digest.json()
    assert digest.signed_by(secret)
    assert payload["kind"] == "DIGEST" and payload["count"] == 1010
    assert len(payload["events"]) == 50 and payload["eventsOmitted"] == 960
    assert payload["text"].startswith("[on failure] 1010 more: 1010 failures of invoices since ")

    clock.advance(1)  # the window is over: the next failure goes out at once and opens a new window
    await ended(hub, workflow_id, 5)
    await worker.run_once()
    assert [c.json()["kind"] for c in receiver.received] == ["ALERT", "DIGEST", "ALERT"]
    assert receiver.received[2].json()["count"] == 1


async def test_a_failing_delivery_is_retried_with_backoff_then_given_up_visibly(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, clock: Clock, receiver: Receiver, workflow_id: str
) -> None:
    channel_id, _ = await webhook(admin, receiver)
    await rule(admin, channel_id)
    await ended(hub, workflow_id, 1)
    receiver.statuses = [500, 503, 502]

    await worker.run_once()
    [pending] = await deliveries(admin, status="PENDING")
    assert pending["attempts"] == 1 and pending["lastHttpStatus"] == 500
    assert datetime.fromisoformat(pending["nextAttemptAt"]) == clock.now + timedelta(seconds=10)
    await worker.run_once()
    assert len(receiver.received) == 1  # not due yet

    clock.advance(10)
    await worker.run_once()
    assert len(receiver.received) == 2
    clock.advance(19)  # the second wait is twice the first
    await worker.run_once()
    assert len(receiver.received) == 2
    clock.advance(1)
    await worker.run_once()
    assert len(receiver.received) == 3
    assert {c.json()["id"] for c in receiver.received} == {pending["id"]}  # the same idempotency id each time

    [failed] = await deliveries(admin, status="FAILED")
    assert failed["attempts"] == 3 and failed["lastHttpStatus"] == 502 and failed["nextAttemptAt"] is None
    assert [a["httpStatus"] for a in failed["history"]] == [500, 503, 502]
    audit = (await admin.get("/api/audit", params={"action": "alert.delivery.failed"})).json()["entries"]
    assert [e["entityId"] for e in audit] == [failed["id"]]

    r = await admin.post(f"/api/alerts/deliveries/{failed['id']}/retry")
    assert r.status_code == 200 and r.json()["delivery"]["status"] == "PENDING"
    clock.advance(1)
    await worker.run_once()
    [sent] = await deliveries(admin, status="SENT")
    assert sent["id"] == failed["id"] and len(sent["history"]) == 4
    assert (await admin.post(f"/api/alerts/deliveries/{failed['id']}/retry")).status_code == 409


async def test_an_unreachable_webhook_is_a_recorded_error(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, workflow_id: str
) -> None:
    body = {"name": "nowhere", "type": "WEBHOOK", "url": f"http://127.0.0.1:{free_port()}/hook"}
    channel_id = (await admin.post("/api/alerts/channels", json=body)).json()["channel"]["id"]
    await rule(admin, channel_id)
    await ended(hub, workflow_id, 1)
    await worker.run_once()
    [delivery] = await deliveries(admin)
    assert delivery["status"] == "PENDING" and delivery["lastHttpStatus"] is None
    assert delivery["lastError"].startswith("ConnectError")


async def test_two_workers_never_send_the_same_delivery(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, clock: Clock, receiver: Receiver, workflow_id: str
) -> None:
    other = AlertWorker(hub.db, hub.settings, hub.secret_key, clock)
    channel_id, _ = await webhook(admin, receiver)
    await rule(admin, channel_id)
    await ended(hub, workflow_id, 45)
    try:
        await asyncio.gather(worker.run_once(), other.run_once(), worker.run_once(), other.run_once())
    finally:
        await other.senders.aclose()
    ids = [c.json()["id"] for c in receiver.received]
    assert len(ids) == 45 and len(set(ids)) == 45


async def test_a_runner_offline_too_long_alerts_once_per_episode(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, worker: AlertWorker, receiver: Receiver
) -> None:
    runner = await ProtocolRunner.register(admin, client, "press-1")
    await ProtocolRunner.register(admin, client, "press-2")
    channel_id, _ = await webhook(admin, receiver)
    await rule(admin, channel_id, name="runners", events=["RUNNER_OFFLINE"], offlineMinutes=5)

    async def offline(name: str, minutes: float) -> None:
        async with hub.db.transaction() as session:
            await session.execute(
                text(
                    "UPDATE runners SET status = 'OFFLINE', last_heartbeat_at = now() - make_interval(secs => :s)"
                    " WHERE name = :name"
                ),
                {"s": minutes * 60, "name": name},
            )

    await offline("press-1", 6)
    await offline("press-2", 2)  # not long enough
    await worker.collect_offline()
    await worker.run_once()
    await worker.collect_offline()
    await worker.run_once()
    [call] = receiver.received
    [event] = call.json()["events"]
    assert event["type"] == "RUNNER_OFFLINE" and event["runnerName"] == "press-1"
    assert event["runnerId"] == runner.runner_id
    assert "Runner press-1 is offline" in call.json()["text"]

    await offline("press-1", 7.5)  # came back, then went away again: a new episode
    await worker.collect_offline()
    await worker.run_once()
    assert len(receiver.received) == 2


async def test_slack_gets_text_and_its_url_stays_secret(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, receiver: Receiver, workflow_id: str
) -> None:
    url = receiver.url + "/services/T000/B000/s3cr3tpath"
    r = await admin.post("/api/alerts/channels", json={"name": "slack", "type": "SLACK", "url": url})
    assert r.status_code == 201, r.text
    channel = r.json()["channel"]
    assert "secret" not in r.json() and channel["url"] == "http://127.0.0.1/…"
    await rule(admin, channel["id"])
    await ended(hub, workflow_id, 1)
    await worker.run_once()
    [call] = receiver.received
    assert call.path == "/services/T000/B000/s3cr3tpath"
    assert set(call.json()) == {"text"} and "invoices failed" in call.json()["text"]
    audit = (await admin.get("/api/audit", params={"entityType": "alert_channel"})).text
    assert "s3cr3tpath" not in audit


async def test_secrets_are_shown_once_and_never_again(
    admin: httpx.AsyncClient, receiver: Receiver, worker: AlertWorker, clock: Clock
) -> None:
    channel_id, secret = await webhook(admin, receiver)
    assert secret.startswith("exs_") and len(secret) > 40
    for path in ("/api/alerts/channels", f"/api/alerts/channels/{channel_id}", "/api/audit"):
        assert secret not in (await admin.get(path)).text
    r = await admin.post(f"/api/alerts/channels/{channel_id}/rotate-secret")
    assert r.status_code == 200
    rotated = r.json()["secret"]
    assert rotated != secret

    r = await admin.post(f"/api/alerts/channels/{channel_id}/test")
    assert r.status_code == 202
    clock.advance(1)  # the test message is due at the hub's time, a moment after this worker's clock was set
    await worker.run_once()
    [call] = receiver.received
    assert call.json()["kind"] == "TEST" and call.signed_by(rotated) and not call.signed_by(secret)


async def test_email_goes_through_smtp_with_the_credentials_login(
    admin: httpx.AsyncClient, hub: Hub, clock: Clock, workflow_id: str
) -> None:
    inbox = Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"mail-pass-7")
        return AuthResult(success=ok)

    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    fields = {"username": "alerts", "password": "mail-pass-7"}
    assert (await admin.post("/api/credentials", json={"name": "mailer", "fields": fields})).status_code == 201
    settings = hub.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": controller.port,
            "smtp_security": "none",
            "smtp_from": "exekra@example.test",
            "smtp_credential": "mailer",
        }
    )
    worker = AlertWorker(hub.db, settings, hub.secret_key, clock)
    try:
        body = {"name": "ops mail", "type": "EMAIL", "to": ["ops@example.test", "lead@example.test"]}
        r = await admin.post("/api/alerts/channels", json=body)
        assert r.status_code == 201 and "secret" not in r.json()
        await rule(admin, r.json()["channel"]["id"])
        await ended(hub, workflow_id, 2)
        await worker.run_once()
    finally:
        await worker.senders.aclose()
        controller.stop()
    messages = inbox.messages()
    assert len(messages) == 2  # one mail per delivery (no cool-down)
    assert messages[0]["To"] == "ops@example.test, lead@example.test"
    assert messages[0]["From"] == "exekra@example.test"
    assert "invoices failed" in messages[0]["Subject"]
    reads = (await admin.get("/api/audit", params={"action": "credential.read"})).json()["entries"]
    assert reads and reads[0]["details"]["purpose"] == "alert email"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/alerts/channels", {"name": "m", "type": "EMAIL"}, 422),
        ("/api/alerts/channels", {"name": "m", "type": "EMAIL", "to": ["not-an-address"]}, 422),
        ("/api/alerts/channels", {"name": "w", "type": "WEBHOOK", "url": "ftp://example.test/x"}, 422),
        ("/api/alerts/channels", {"name": "w", "type": "WEBHOOK", "to": ["a@b.test"]}, 422),
        ("/api/alerts/channels", {"name": "s", "type": "PAGER", "url": "http://x.test"}, 422),
        ("/api/alerts/rules", {"name": "r", "channelId": "CHANNEL", "events": []}, 422),
        ("/api/alerts/rules", {"name": "r", "channelId": "CHANNEL", "events": ["FAILED", "FAILED"]}, 422),
        ("/api/alerts/rules", {"name": "r", "channelId": "CHANNEL", "events": ["EXPLODED"]}, 422),
        ("/api/alerts/rules", {"name": "r", "channelId": "CHANNEL", "events": ["FAILED"], "cooldownSeconds": -1}, 422),
        (
            "/api/alerts/rules",
            {"name": "r", "channelId": "CHANNEL", "events": ["RUNNER_OFFLINE"], "workflowId": "WORKFLOW"},
            422,
        ),
        ("/api/alerts/rules", {"name": "r", "channelId": str(uuid.uuid4()), "events": ["FAILED"]}, 404),
        ("/api/alerts/rules", {"name": "r", "channelId": "CHANNEL", "events": ["FAILED"], "workflowId": "nope"}, 404),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    admin: httpx.AsyncClient, receiver: Receiver, workflow_id: str, path: str, body: dict[str, Any], status: int
) -> None:
    channel_id, _ = await webhook(admin, receiver)
    ids = {"CHANNEL": channel_id, "WORKFLOW": workflow_id}
    filled = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    r = await admin.post(path, json=filled)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


async def test_conflicts_name_the_reason(admin: httpx.AsyncClient, receiver: Receiver) -> None:
    channel_id, _ = await webhook(admin, receiver)
    await rule(admin, channel_id)
    r = await admin.post("/api/alerts/channels", json={"name": "ops-hook", "type": "SLACK", "url": "https://x.test/a"})
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
    r = await admin.delete(f"/api/alerts/channels/{channel_id}")
    assert r.status_code == 409 and "on failure" in r.json()["error"]["message"]
    slack = await admin.post("/api/alerts/channels", json={"name": "s", "type": "SLACK", "url": "https://x.test/a"})
    r = await admin.post(f"/api/alerts/channels/{slack.json()['channel']['id']}/rotate-secret")
    assert r.status_code == 409
    r = await admin.patch(f"/api/alerts/channels/{channel_id}", json={"to": ["a@b.test"]})
    assert r.status_code == 422


async def test_rules_and_channels_are_audited_and_editable(
    admin: httpx.AsyncClient, receiver: Receiver, workflow_id: str
) -> None:
    channel_id, _ = await webhook(admin, receiver)
    created = await rule(admin, channel_id, workflowId=workflow_id, cooldownSeconds=600)
    r = await admin.patch(
        f"/api/alerts/rules/{created['id']}", json={"events": ["FAILED", "TIMEOUT"], "enabled": False}
    )
    assert r.status_code == 200
    assert r.json()["rule"]["events"] == ["FAILED", "TIMEOUT"] and r.json()["rule"]["enabled"] is False
    r = await admin.patch(f"/api/alerts/rules/{created['id']}", json={"events": ["RUNNER_OFFLINE"]})
    assert r.status_code == 422
    listed = (await admin.get("/api/alerts/rules", params={"workflowId": workflow_id})).json()
    assert listed["total"] == 1
    assert (await admin.delete(f"/api/alerts/rules/{created['id']}")).status_code == 200
    assert (await admin.delete(f"/api/alerts/channels/{channel_id}")).status_code == 200
    actions = [e["action"] for e in (await admin.get("/api/audit", params={"limit": 50})).json()["entries"]]
    for action in ("alert.channel.create", "alert.rule.create", "alert.rule.update", "alert.rule.delete"):
        assert action in actions
    assert "alert.channel.delete" in actions


async def test_deleting_a_rule_drops_its_unsent_digest_and_keeps_what_was_sent(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, clock: Clock, receiver: Receiver, workflow_id: str
) -> None:
    channel_id, _ = await webhook(admin, receiver)
    created = await rule(admin, channel_id, cooldownSeconds=60)
    await ended(hub, workflow_id, 3)
    await worker.run_once()
    assert sorted(d["status"] for d in await deliveries(admin)) == ["PENDING", "SENT"]

    assert (await admin.delete(f"/api/alerts/rules/{created['id']}")).status_code == 200
    [kept] = await deliveries(admin)
    assert kept["status"] == "SENT" and kept["ruleId"] is None
    clock.advance(60)
    await worker.run_once()
    assert len(receiver.received) == 1


async def test_old_events_and_finished_deliveries_are_purged(
    admin: httpx.AsyncClient, hub: Hub, worker: AlertWorker, clock: Clock, receiver: Receiver, workflow_id: str
) -> None:
    channel_id, _ = await webhook(admin, receiver)
    await rule(admin, channel_id)
    await ended(hub, workflow_id, 2)
    receiver.statuses = [500]  # one stays PENDING: it is kept
    await worker.run_once()
    clock.advance(hub.settings.retention_days * 86400 + 1)
    async with hub.db.transaction() as session:  # the purge goes by the database's clock: the rows age there
        for table in ("alert_deliveries", "alert_events"):
            await session.execute(
                text(f"UPDATE {table} SET created_at = created_at - make_interval(days => :days + 1)"),
                {"days": hub.settings.retention_days},
            )
    report = await retention.purge(
        hub.db, retention_days=hub.settings.retention_days, metrics_retention_days=7, batch=100
    )
    assert report.alerts == 1
    [kept] = await deliveries(admin)
    assert kept["status"] == "PENDING"
    clock.advance(60)
    await worker.deliver_due()  # its event was kept with it
    [sent] = await deliveries(admin)
    assert sent["status"] == "SENT" and sent["payload"]["count"] == 1


async def test_a_hub_with_alerts_on_alerts_a_runner_offline_from_the_leaders_maintenance_pass(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, hub_with: HubWith, receiver: Receiver
) -> None:
    await ProtocolRunner.register(admin, client, "press-9")
    channel_id, secret = await webhook(admin, receiver)
    await rule(admin, channel_id, name="runners", events=["RUNNER_OFFLINE"], offlineMinutes=5)
    async with hub.db.transaction() as session:
        await session.execute(
            text("UPDATE runners SET status = 'OFFLINE', last_heartbeat_at = now() - interval '6 minutes'")
        )
    async with hub_with(alerts_enabled=True) as app:
        # The session's hub holds the leader lease, so this one runs the maintenance pass only when told (a leader
        # runs one when it starts leading); its alert worker sends.
        await app.state.maintenance.run_checks()
        [call] = await asyncio.to_thread(receiver.wait_for, 1)
    assert call.signed_by(secret) and call.json()["events"][0]["runnerName"] == "press-9"
