"""The dashboard's alerts page: channels (ADMIN), rules (ADMIN, DEVELOPER), deliveries and their retry."""

from __future__ import annotations

import re

import httpx

from exekra.hub.alerts.worker import AlertWorker
from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION, ClientFactory
from .protocol import post_form, publish_workflow
from .test_alerts import Clock, ended


async def test_a_webhook_channel_shows_its_secret_once_then_a_rule_alerts_it(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    data = {"name": "pager", "type": "WEBHOOK", "address": "http://127.0.0.1:9/hook"}
    r = await post_form(admin, "/alerts/channels", data, page="/alerts")
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    assert "shown only this once" in r.text
    secret = re.search(r'id="alert-secret" class="command">([^<]+)<', r.text)
    assert secret and secret.group(1).startswith("exs_")
    page = (await admin.get("/alerts")).text
    assert 'data-channel="pager"' in page and secret.group(1) not in page

    workflow_id = await publish_workflow(admin, "invoices", SIMPLE_DEFINITION)
    channel_id = (await admin.get("/api/alerts/channels")).json()["channels"][0]["id"]
    rule = {
        "name": "invoice failures",
        "channel": channel_id,
        "workflow": workflow_id,
        "events": "FAILED",
        "cooldown": "0",
    }
    r = await post_form(admin, "/alerts/rules", rule, page="/alerts")
    assert r.status_code == 303
    page = (await admin.get("/alerts")).text
    assert 'data-rule="invoice failures"' in page and "invoices" in page

    settings = hub.settings.model_copy(update={"alert_max_attempts": 1})
    worker = AlertWorker(hub.db, settings, hub.secret_key, Clock())
    try:
        await ended(hub, workflow_id, 1)
        await worker.run_once()  # nothing listens on port 9: the one attempt fails
    finally:
        await worker.senders.aclose()
    failed = (await admin.get("/alerts?failed=true")).text
    assert 'data-status="FAILED"' in failed and "ConnectError" in failed and ">Retry<" in failed


async def test_bad_channel_input_is_explained_in_place(admin: httpx.AsyncClient) -> None:
    data = {"name": "mail", "type": "EMAIL", "address": "not an address"}
    r = await post_form(admin, "/alerts/channels", data, page="/alerts")
    assert r.status_code == 422 and "is not an email address" in r.text and 'value="not an address"' in r.text


async def test_operators_see_alerts_but_no_forms(make_client: ClientFactory, admin: httpx.AsyncClient) -> None:
    body = {"name": "pager", "type": "WEBHOOK", "url": "https://alerts.example.test/x"}
    assert (await admin.post("/api/alerts/channels", json=body)).status_code == 201
    operator = await make_client("OPERATOR")
    page = (await operator.get("/alerts")).text
    assert 'data-channel="pager"' in page and 'action="/alerts/channels"' not in page and "Send test" not in page
    r = await post_form(
        operator, "/alerts/channels", {"name": "x", "type": "SLACK", "address": "https://x"}, page="/alerts"
    )
    assert r.status_code == 403
