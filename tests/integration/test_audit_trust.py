"""Audit you can trust (issue 16 §3): the database refuses changes to the log except the retention purge's own
path, and the log records credential reads by runners and failed sign-ins (licence changes: test_license_api;
secret regenerations: test_runners_api)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from exekra.hub.context import Hub
from exekra.hub.retention import purge

from .conftest import ADMIN_EMAIL, fill_audit
from .protocol import ProtocolRunner, publish_workflow, running_execution


async def _count(hub: Hub, sql: str) -> int:
    async with hub.db.session() as session:
        return int((await session.execute(text(sql))).scalar_one())


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'nothing.happened'",
        "UPDATE audit_log SET details = NULL WHERE id = (SELECT max(id) FROM audit_log)",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE action = 'test.entry'",
    ],
)
async def test_the_database_refuses_to_update_or_delete_audit_entries(hub: Hub, statement: str) -> None:
    await fill_audit(hub, 3, "test.entry")
    with pytest.raises(DBAPIError, match="audit_log is append-only"):
        async with hub.db.transaction() as session:
            await session.execute(text(statement))
    assert await _count(hub, "SELECT count(*) FROM audit_log WHERE action = 'test.entry'") == 3


async def test_the_retention_purge_deletes_only_entries_past_audit_retention(hub: Hub) -> None:
    await fill_audit(hub, 5, "test.entry", days_ago=400)
    await fill_audit(hub, 2, "test.entry", days_ago=100)

    report = await purge(hub.db, retention_days=30, metrics_retention_days=7, batch=2, audit_retention_days=365)

    assert report.audit == 5
    assert await _count(hub, "SELECT count(*) FROM audit_log WHERE action = 'test.entry'") == 2
    recorded = "SELECT (details->>'audit')::int FROM audit_log WHERE action = 'retention.purge'"
    assert await _count(hub, recorded) == 5
    with pytest.raises(DBAPIError, match="append-only"):  # the purge's permission ended with its statement
        async with hub.db.transaction() as session:
            await session.execute(text("SELECT exekra_purge_audit_log(now() - interval '1 day', 1)"))
            await session.execute(text("DELETE FROM audit_log"))


async def test_without_audit_retention_the_purge_keeps_every_entry(hub: Hub) -> None:
    await fill_audit(hub, 3, "test.entry", days_ago=4000)
    report = await purge(hub.db, retention_days=30, metrics_retention_days=7, batch=10)
    assert report.audit == 0
    assert await _count(hub, "SELECT count(*) FROM audit_log WHERE action = 'test.entry'") == 3


async def test_a_runners_credential_read_is_audited_with_the_runner_and_the_execution(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    r = await admin.post("/api/credentials", json={"name": "erp", "fields": {"password": "hunter2"}})
    assert r.status_code == 201, r.text
    credential_id = r.json()["credential"]["id"]
    uses = {"nodes": [{"id": "a", "activity": "log.message", "params": {"message": "{{ credentials.erp.password }}"}}]}
    workflow_id = await publish_workflow(admin, "reads-erp", uses)
    runner = await ProtocolRunner.online(admin, client, "reader")
    execution_id = await running_execution(admin, runner, workflow_id)

    read = await client.get(
        f"/api/runner/executions/{execution_id}/credentials/erp", params={"attempt": 1}, headers=runner.headers
    )
    assert read.status_code == 200 and read.json()["credential"]["fields"] == {"password": "hunter2"}
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT actor_type, actor_id, entity_type, entity_id, details, details::text AS raw "
                    "FROM audit_log WHERE action = 'credential.read'"
                )
            )
        ).all()
    [row] = rows
    assert (row.actor_type, row.actor_id) == ("RUNNER", runner.runner_id)
    assert (row.entity_type, row.entity_id) == ("credential", credential_id)
    assert row.details == {"name": "erp", "executionId": execution_id, "attempt": 1}
    assert "hunter2" not in row.raw


async def test_failed_sign_ins_are_audited_with_the_address_and_the_email(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    for email in (ADMIN_EMAIL, "Nobody@Example.com"):
        r = await client.post("/api/auth/login", json={"email": email, "password": "wrong-password"})
        assert r.status_code == 401
    assert (await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong"})).status_code == 401
    async with hub.db.session() as session:
        rows = (
            await session.execute(
                text("SELECT actor_type, actor_id, ip, details, details::text AS raw FROM audit_log "
                     "WHERE action = 'auth.login_failed' ORDER BY id")
            )
        ).all()  # fmt: skip
    assert [row.details["email"] for row in rows] == [ADMIN_EMAIL, "nobody@example.com", ADMIN_EMAIL]
    assert all(row.actor_type == "USER" and row.actor_id is None and row.ip for row in rows)
    assert all("wrong" not in row.raw for row in rows)  # never the password tried
