"""`idPrefix` on the lists of executions, workflows, runners and triggers: the short ids people copy from the
dashboard and the CLI (issue 13, item 5). A prefix is 6 to 32 hex digits (dashes ignored)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION
from .protocol import ProtocolRunner, publish_workflow


async def _rename_id(hub: Hub, table: str, old: str, new: str) -> None:
    """Give a fresh row (nothing refers to it yet) an id of the test's choosing."""
    async with hub.db.transaction() as session:
        await session.execute(text(f"UPDATE {table} SET id = :new WHERE id = :old"), {"new": new, "old": old})


async def test_an_execution_is_found_by_the_first_characters_of_its_id(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "short", SIMPLE_DEFINITION, labels=["nowhere"])
    ids = [
        (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
        for _ in range(3)
    ]
    for execution_id in ids:
        for prefix in (execution_id[:6], execution_id[:8].upper(), execution_id[:13]):
            found = (await admin.get("/api/executions", params={"idPrefix": prefix})).json()
            assert [e["id"] for e in found["executions"]] == [execution_id], prefix
            assert found["total"] == 1


async def test_a_shared_prefix_lists_every_match(admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub) -> None:
    first = await ProtocolRunner.register(admin, client, "twin-1")
    second = await ProtocolRunner.register(admin, client, "twin-2")
    await _rename_id(hub, "runners", str(first.runner_id), "ab12cd00-0000-4000-8000-000000000001")
    await _rename_id(hub, "runners", str(second.runner_id), "ab12cd99-0000-4000-8000-000000000002")
    both = (await admin.get("/api/runners", params={"idPrefix": "ab12cd"})).json()
    assert sorted(r["name"] for r in both["runners"]) == ["twin-1", "twin-2"] and both["total"] == 2
    one = (await admin.get("/api/runners", params={"idPrefix": "ab12cd9"})).json()
    assert [r["name"] for r in one["runners"]] == ["twin-2"]


async def test_workflows_and_triggers_are_found_by_prefix(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "prefixed", SIMPLE_DEFINITION)
    await publish_workflow(admin, "other", SIMPLE_DEFINITION)
    found = (await admin.get("/api/workflows", params={"idPrefix": workflow_id[:7]})).json()["workflows"]
    assert [w["id"] for w in found] == [workflow_id]
    r = await admin.post("/api/triggers", json={"workflowId": workflow_id, "type": "WEBHOOK", "name": "hook"})
    trigger_id = r.json()["trigger"]["id"]
    found = (await admin.get("/api/triggers", params={"idPrefix": trigger_id[:6]})).json()["triggers"]
    assert [t["id"] for t in found] == [trigger_id]


@pytest.mark.parametrize("prefix", ["abc12", "zzzzzz", "ab1-2c", "0" * 33, "ab 12cd"])
@pytest.mark.parametrize("path", ["/api/executions", "/api/workflows", "/api/runners", "/api/triggers"])
async def test_a_prefix_that_cannot_be_one_is_a_validation_error(
    admin: httpx.AsyncClient, path: str, prefix: str
) -> None:
    r = await admin.get(path, params={"idPrefix": prefix})
    assert r.status_code == 422, (prefix, r.text)
    assert r.json()["error"]["message"].startswith("idPrefix:")


async def test_no_match_is_an_empty_list(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/api/executions", params={"idPrefix": uuid.uuid4().hex[:10]})
    assert r.status_code == 200 and r.json()["executions"] == [] and r.json()["total"] == 0
