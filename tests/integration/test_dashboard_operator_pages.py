"""The operator pages in process: Studio's page, triggers, credentials, audit, my account, runner history."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import PASSWORD, SIMPLE_DEFINITION, ClientFactory
from .protocol import ProtocolRunner, publish_workflow
from .test_dashboard import post_form
from .test_dashboard_actions import follow

# --- Studio -------------------------------------------------------------------------------------------------


async def test_the_design_page_hands_studio_the_latest_version_and_the_version_list(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "designed", SIMPLE_DEFINITION)
    definition = {**SIMPLE_DEFINITION, "ui": {"positions": {"hello": {"x": 5, "y": 6}}}}
    await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": definition})

    page = await admin.get(f"/workflows/{workflow_id}/design")
    assert page.status_code == 200
    assert '<script src="/assets/studio/studio.js' in page.text
    island = re.search(r'<script type="application/json" id="studio-data">(.*?)</script>', page.text, re.S)
    assert island
    boot = orjson.loads(island.group(1))
    assert boot["latest"] == {"number": 2, "published": False, "definition": definition}
    assert boot["versions"] == [{"number": 2, "published": False}, {"number": 1, "published": True}]
    assert boot["canEdit"] is True and boot["workflow"]["name"] == "designed"
    assert (await admin.get("/assets/studio/studio.js")).status_code == 200


async def test_an_operator_sees_the_design_read_only(admin: httpx.AsyncClient, make_client: ClientFactory) -> None:
    workflow_id = await publish_workflow(admin, "watched", SIMPLE_DEFINITION)
    operator = await make_client("OPERATOR")
    page = await operator.get(f"/workflows/{workflow_id}/design")
    assert page.status_code == 200 and "read only" in page.text
    island = re.search(r'<script type="application/json" id="studio-data">(.*?)</script>', page.text, re.S)
    assert island and orjson.loads(island.group(1))["canEdit"] is False


# --- triggers -----------------------------------------------------------------------------------------------


async def test_the_cron_preview_explains_and_lists_the_next_five_fires(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/triggers/cron-preview", params={"cron": "30 2 * * 1-5", "timezone": "Europe/Berlin"})
    assert r.status_code == 200
    assert "At 02:30, Monday through Friday" in r.text
    fires = re.findall(r'<time datetime="([^"]+)">', r.text)
    assert len(fires) == 5
    moments = [datetime.fromisoformat(f) for f in fires]
    assert moments == sorted(moments) and all(m > datetime.now(UTC) for m in moments)
    assert all(m.astimezone(UTC).minute == 30 for m in moments)
    bad = await admin.get("/triggers/cron-preview", params={"cron": "61 * * * *", "timezone": "UTC"})
    assert "invalid minute field &#39;61&#39;" in bad.text
    zone = await admin.get("/triggers/cron-preview", params={"cron": "* * * * *", "timezone": "Mars/Base"})
    assert "unknown timezone" in zone.text


async def test_schedules_and_webhooks_are_created_listed_edited_and_deleted(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "triggered", SIMPLE_DEFINITION)
    r = await post_form(
        admin,
        "/triggers",
        {"workflow": workflow_id, "type": "SCHEDULE", "name": "nightly", "cron": "0 3 * * *", "timezone": "UTC"},
        page="/triggers",
    )
    page = await follow(admin, r)
    assert "Schedule nightly created." in page and "At 03:00" in page
    schedule_id = r.headers["location"].rsplit("/", 1)[1]

    r = await post_form(
        admin,
        "/triggers",
        {"workflow": workflow_id, "type": "WEBHOOK", "name": "hook", "inputs": '{"a": 1}'},
        page="/triggers",
    )
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    url = re.search(r'<pre id="webhook-url" class="command">([^<]+)</pre>', r.text)
    assert url and "/api/webhooks/exw_" in url.group(1)
    fired = await admin.post(url.group(1).replace("http://testserver", ""), json={"x": 1})
    assert fired.status_code == 202

    listing = (await admin.get("/triggers", params={"workflow": workflow_id})).text
    assert 'data-trigger="nightly"' in listing and 'data-trigger="hook"' in listing
    assert f"/executions/{fired.json()['executionId']}" in listing  # the webhook's last fire and its execution
    assert url.group(1) not in listing

    r = await post_form(
        admin,
        f"/triggers/{schedule_id}/edit",
        {"name": "nightly", "cron": "15 4 * * *", "timezone": "Europe/Paris"},
        page=f"/triggers/{schedule_id}",
    )
    assert "Trigger saved." in await follow(admin, r)
    trigger = (await admin.get(f"/api/triggers/{schedule_id}")).json()["trigger"]
    assert (trigger["cronExpression"], trigger["timezone"]) == ("15 4 * * *", "Europe/Paris")
    r = await post_form(admin, f"/triggers/{schedule_id}/disable", {}, page=f"/triggers/{schedule_id}")
    await follow(admin, r)
    assert (await admin.get(f"/api/triggers/{schedule_id}")).json()["trigger"]["nextFireAt"] is None
    r = await post_form(admin, f"/triggers/{schedule_id}/delete", {}, page=f"/triggers/{schedule_id}")
    assert "Trigger deleted." in await follow(admin, r)


async def test_the_overlap_policy_is_set_in_the_forms_and_the_last_skip_is_shown(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    workflow_id = await publish_workflow(admin, "overlapping", SIMPLE_DEFINITION)
    form = {"workflow": workflow_id, "type": "SCHEDULE", "name": "hourly", "cron": "0 * * * *", "timezone": "UTC"}
    r = await post_form(admin, "/triggers", {**form, "overlap": "skip"}, page="/triggers")
    assert "Schedule hourly created." in await follow(admin, r)
    trigger_id = r.headers["location"].rsplit("/", 1)[1]
    assert (await admin.get(f"/api/triggers/{trigger_id}")).json()["trigger"]["overlapPolicy"] == "skip"
    page = (await admin.get(f"/triggers/{trigger_id}")).text
    assert '<option value="skip" selected>' in page and "Skip the fire and record it (skip)" in page

    edit = {"name": "hourly", "cron": "0 * * * *", "timezone": "UTC"}
    r = await post_form(
        admin, f"/triggers/{trigger_id}/edit", {**edit, "overlap": "queue_one"}, page=f"/triggers/{trigger_id}"
    )
    assert "Trigger saved." in await follow(admin, r)
    assert (await admin.get(f"/api/triggers/{trigger_id}")).json()["trigger"]["overlapPolicy"] == "queue_one"
    r = await post_form(
        admin, f"/triggers/{trigger_id}/edit", {**edit, "overlap": "sometimes"}, page=f"/triggers/{trigger_id}"
    )
    assert "overlap_policy: Input should be" in await follow(admin, r)

    reason = "previous run still running (overlap policy skip)"
    async with hub.db.transaction() as session:
        await session.execute(
            text("UPDATE triggers SET last_skipped_at = now(), last_skip_reason = :reason"), {"reason": reason}
        )
    assert reason in (await admin.get(f"/triggers/{trigger_id}")).text
    listing = (await admin.get("/triggers")).text
    assert reason in listing and "overlap: queue_one" in listing

    refused = await post_form(admin, "/triggers", {**form, "name": "odd", "overlap": "sometimes"}, page="/triggers")
    assert refused.status_code == 422 and 'value="odd"' in refused.text


async def test_a_refused_trigger_is_explained_with_what_was_typed(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "strict-cron", SIMPLE_DEFINITION)
    r = await post_form(
        admin,
        "/triggers",
        {"workflow": workflow_id, "type": "SCHEDULE", "name": "broken", "cron": "* * *", "timezone": "UTC"},
        page="/triggers",
    )
    assert r.status_code == 422
    assert "cron expression needs 5 fields" in r.text and 'value="broken"' in r.text


async def test_rotating_a_webhook_shows_a_new_url_and_the_old_one_stops(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "rotated", SIMPLE_DEFINITION)
    created = (
        await admin.post("/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": "w"})
    ).json()
    trigger_id = created["trigger"]["id"]
    r = await post_form(admin, f"/triggers/{trigger_id}/rotate-token", {}, page=f"/triggers/{trigger_id}")
    assert r.status_code == 200 and "The old URL stopped working." in r.text
    assert (await admin.post(f"/api/webhooks/{created['token']}", json={})).status_code == 404


# --- credentials --------------------------------------------------------------------------------------------


async def test_credentials_are_created_replaced_and_deleted_without_values_on_any_page(
    admin: httpx.AsyncClient, hub: Hub
) -> None:
    form = {"name": "mailbox", "type": "smtp", "field-name-0": "user", "field-value-0": "ada"}
    form |= {"field-name-1": "password", "field-value-1": "s3cret-value"}
    r = await post_form(admin, "/credentials", form, page="/credentials")
    assert "Credential mailbox saved." in await follow(admin, r)
    credential = (await admin.get("/api/credentials")).json()["credentials"][0]
    assert credential["fieldNames"] == ["password", "user"]
    uses = {"nodes": [{"id": "a", "activity": "log.message", "params": {"message": "{{ credentials.mailbox.user }}"}}]}
    await publish_workflow(admin, "mailer", uses)

    detail = (await admin.get(f"/credentials/{credential['id']}")).text
    listing = (await admin.get("/credentials")).text
    assert "mailer" in detail and "mailer" in listing
    assert "s3cret-value" not in detail + listing

    replace = {"field-name-0": "user", "field-value-0": "grace", "field-name-1": "token", "field-value-1": "t"}
    r = await post_form(
        admin, f"/credentials/{credential['id']}/replace", replace, page=f"/credentials/{credential['id']}"
    )
    assert "New values of mailbox saved." in await follow(admin, r)
    assert (await admin.get(f"/api/credentials/{credential['id']}")).json()["credential"]["fieldNames"] == [
        "token",
        "user",
    ]

    page = f"/credentials/{credential['id']}"
    r = await post_form(admin, f"/credentials/{credential['id']}/delete", {}, page=page)
    assert "used by the published version of mailer v1" in await follow(admin, r)
    r = await post_form(admin, f"/credentials/{credential['id']}/delete", {"force": "true"}, page=page)
    assert "Credential deleted." in await follow(admin, r)


async def test_operators_cannot_open_the_credentials_or_audit_pages(make_client: ClientFactory) -> None:
    operator = await make_client("OPERATOR")
    for path in ("/credentials", "/audit", "/audit.csv"):
        assert (await operator.get(path)).status_code == 403, path
    nav = (await operator.get("/triggers")).text
    assert 'href="/triggers"' in nav and 'href="/credentials"' not in nav and 'href="/audit"' not in nav


# --- audit --------------------------------------------------------------------------------------------------


async def test_audit_filters_pages_and_exports(admin: httpx.AsyncClient, hub: Hub) -> None:
    async with hub.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO audit_log (actor_type, action, entity_type, entity_id) "
                "SELECT 'SYSTEM', 'test.row', 'thing', 'n' || n FROM generate_series(1, 120) AS n"
            )
        )
    me = (await admin.get("/api/auth/me")).json()["user"]
    await admin.post("/api/runners", json={"name": "audited"})

    first = (await admin.get("/audit", params={"action": "test.row"})).text
    assert first.count('data-action="test.row"') == 50 and 'data-entity="n120"' in first
    older = re.search(r'href="(/audit\?[^"]*cursor=\d+[^"]*)" rel="next"', first)
    assert older
    second = (await admin.get(older.group(1).replace("&amp;", "&"))).text
    assert 'data-entity="n70"' in second and 'data-entity="n120"' not in second

    mine = (await admin.get("/audit", params={"actor": me["email"]})).text
    assert 'data-action="runner.register"' in mine and 'data-action="test.row"' not in mine
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert "No entries match" in (await admin.get("/audit", params={"since": later})).text

    exported = await admin.get("/audit.csv", params={"action": "test.row"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 120 and rows[0]["entityId"] == "n120" and rows[-1]["entityId"] == "n1"


# --- my account ---------------------------------------------------------------------------------------------


async def test_personal_tokens_are_shown_once_listed_with_last_use_and_revoked(
    make_client: ClientFactory, client: httpx.AsyncClient
) -> None:
    operator = await make_client("OPERATOR")
    r = await post_form(operator, "/account/tokens", {"name": "export script", "days": "30"}, page="/account")
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    token = re.search(r'<pre id="new-token" class="command">([^<]+)</pre>', r.text)
    assert token
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token.group(1)}"})).status_code == 200

    page = (await operator.get("/account")).text
    assert 'data-token="export script"' in page and token.group(1) not in page
    assert "never" not in page.split('data-token="export script"')[1].split("</tr>")[0].split("</td>")[2]
    token_id = (await operator.get("/api/auth/tokens")).json()["apiTokens"][0]["id"]
    r = await post_form(operator, f"/account/tokens/{token_id}/revoke", {}, page="/account")
    assert "Token revoked" in await follow(operator, r)
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token.group(1)}"})).status_code == 401


async def test_the_account_page_changes_ones_own_password(
    make_client: ClientFactory, client: httpx.AsyncClient
) -> None:
    operator = await make_client("OPERATOR")
    email = (await operator.get("/api/auth/me")).json()["user"]["email"]
    wrong = await post_form(
        operator, "/account/password", {"current": "not-it", "new": "n3w-passw0rd", "confirm": "n3w-passw0rd"}
    )
    assert "currentPassword: wrong password" in await follow(operator, wrong)
    differ = await post_form(
        operator, "/account/password", {"current": PASSWORD, "new": "n3w-passw0rd", "confirm": "other-one"}
    )
    assert "confirmation differ" in await follow(operator, differ)
    short = await post_form(operator, "/account/password", {"current": PASSWORD, "new": "short", "confirm": "short"})
    assert "at least 8" in await follow(operator, short)
    login = {"email": email, "password": PASSWORD}
    assert (await client.post("/api/auth/login", json=login)).status_code == 200  # unchanged so far

    changed = await post_form(
        operator, "/account/password", {"current": PASSWORD, "new": "n3w-passw0rd", "confirm": "n3w-passw0rd"}
    )
    assert "Password changed" in await follow(operator, changed)  # this session goes on
    assert (await client.post("/api/auth/login", json=login)).status_code == 401
    assert (await client.post("/api/auth/login", json={**login, "password": "n3w-passw0rd"})).status_code == 200


# --- runner history -----------------------------------------------------------------------------------------


async def test_the_runner_page_charts_a_week_of_heartbeats_averaged_per_bucket(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    agent = await ProtocolRunner.register(admin, client, "charted")
    async with hub.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO runner_metrics (runner_id, ts, cpu_percent, memory_percent, disk_percent) "
                "SELECT :runner, now() - n * interval '30 seconds', 50 + (n % 2) * 10, 40, 30 "
                "FROM generate_series(0, 20159) AS n"
            ),
            {"runner": agent.runner_id},
        )
    page = (await admin.get(f"/runners/{agent.runner_id}", params={"hours": 168})).text
    assert "20,160 heartbeats" in page
    chart = orjson.loads(
        re.search(r'<script type="application/json" id="metrics-chart">(.*?)</script>', page, re.S).group(1)
    )
    cpu = chart["data"]["datasets"][0]["data"]
    assert 200 <= len(cpu) <= 241 and all(abs(v - 55) < 1 for v in cpu[1:-1])
    assert chart["data"]["datasets"][1]["data"][5] == 60  # the CPU peak of the bucket
