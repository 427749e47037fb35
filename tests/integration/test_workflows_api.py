"""Workflows API (SPEC §7.1, §3): settings, versions, publishing, export/import, roles and audit."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.context import Hub

from .conftest import SIMPLE_DEFINITION, UNKNOWN_ID, ClientFactory

CYCLE = {
    "nodes": [
        {"id": "a", "activity": "log.message", "params": {"message": "a"}},
        {"id": "b", "activity": "log.message", "params": {"message": "b"}},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
}
TWO_STEPS = {
    "nodes": [
        {"id": "one", "activity": "log.message", "params": {"message": "one"}},
        {"id": "two", "activity": "log.message", "params": {"message": "two"}},
    ],
    "edges": [{"from": "one", "to": "two"}],
}
WORKFLOW_KEYS = {
    "id",
    "name",
    "description",
    "runnerType",
    "labels",
    "priority",
    "timeoutSeconds",
    "retry",
    "maxConcurrent",
    "concurrencyKey",
    "archived",
    "publishedVersion",
    "latestVersion",
    "createdAt",
    "updatedAt",
}
VERSION_KEYS = {
    "id",
    "workflowId",
    "number",
    "definition",
    "published",
    "state",
    "publishedAt",
    "createdBy",
    "createdAt",
}


async def create(client: httpx.AsyncClient, name: str = "hello", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "definition": SIMPLE_DEFINITION, **fields}
    r = await client.post("/api/workflows", json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def save_version(client: httpx.AsyncClient, workflow_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/api/workflows/{workflow_id}/versions", json={"definition": definition})
    assert r.status_code == 201, r.text
    version: dict[str, Any] = r.json()["version"]
    return version


async def audit_rows(hub: Hub, entity_id: str) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    async with hub.db.session() as session:
        rows = await session.execute(
            text("SELECT action, actor_id, details FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor_id, r.details) for r in rows]


async def my_user_id(client: httpx.AsyncClient) -> str:
    user_id: str = (await client.get("/api/auth/me")).json()["user"]["id"]
    return user_id


# --- create ---------------------------------------------------------------------------------------


async def test_create_answers_the_workflow_and_draft_version_1(admin: httpx.AsyncClient) -> None:
    body = await create(admin, "nightly-report")
    workflow, version = body["workflow"], body["version"]
    assert set(workflow) == WORKFLOW_KEYS and set(version) == VERSION_KEYS
    assert uuid.UUID(workflow["id"]) and isinstance(workflow["id"], str)
    assert workflow["name"] == "nightly-report" and workflow["description"] == ""
    assert workflow["priority"] == 5 and workflow["labels"] == [] and workflow["runnerType"] is None
    assert workflow["timeoutSeconds"] is None and workflow["archived"] is False
    assert workflow["latestVersion"] == 1 and workflow["publishedVersion"] is None
    assert workflow["createdAt"].endswith("Z") and workflow["updatedAt"]
    assert version["number"] == 1 and version["published"] is False and version["publishedAt"] is None
    assert version["workflowId"] == workflow["id"] and version["definition"] == SIMPLE_DEFINITION
    assert version["createdBy"] == await my_user_id(admin)


async def test_create_keeps_every_setting(admin: httpx.AsyncClient) -> None:
    workflow = (
        await create(
            admin,
            "invoices",
            description="Pull invoices",
            runnerType="windows",
            labels=["sap", "finance"],
            priority=8,
            timeoutSeconds=600,
        )
    )["workflow"]
    assert workflow["description"] == "Pull invoices" and workflow["runnerType"] == "windows"
    assert workflow["labels"] == ["sap", "finance"] and workflow["priority"] == 8
    assert workflow["timeoutSeconds"] == 600


async def test_create_with_a_taken_name_is_a_conflict(admin: httpx.AsyncClient) -> None:
    await create(admin, "dup")
    r = await admin.post("/api/workflows", json={"name": "dup", "definition": SIMPLE_DEFINITION})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert "dup" in r.json()["error"]["message"]


async def test_create_with_a_cycle_is_422_with_the_exact_problem(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/workflows", json={"name": "loop", "definition": CYCLE})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"] == {"problems": [{"message": "graph has a cycle: a -> b -> a", "node": "b", "edge": 2}]}
    assert "graph has a cycle: a -> b -> a" in error["message"]
    assert (await admin.get("/api/workflows")).json()["total"] == 0


async def test_create_with_an_unknown_activity_is_422(admin: httpx.AsyncClient) -> None:
    definition = {"nodes": [{"id": "x", "activity": "nope.missing"}]}
    r = await admin.post("/api/workflows", json={"name": "bad", "definition": definition})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["problems"] == [
        {"message": "node 'x': unknown activity 'nope.missing'", "node": "x"}
    ]


async def test_create_with_an_oversize_definition_is_413(admin: httpx.AsyncClient, hub: Hub) -> None:
    limit = hub.settings.max_definition_bytes
    nodes = [
        {"id": f"n{i}", "activity": "log.message", "params": {"message": "x" * 10_000}}
        for i in range(limit // 10_000 + 1)
    ]
    r = await admin.post("/api/workflows", json={"name": "huge", "definition": {"nodes": nodes}})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert str(limit) in r.json()["error"]["message"]


async def test_create_with_an_integer_too_large_to_store_is_422(admin: httpx.AsyncClient) -> None:
    definition = copy.deepcopy(SIMPLE_DEFINITION)
    definition["nodes"][0]["params"]["count"] = 2**70
    r = await admin.post("/api/workflows", json={"name": "big-int", "definition": definition})
    assert r.status_code == 422
    assert r.json()["error"]["details"] == {"problems": [{"message": "definition: Integer exceeds 64-bit range"}]}


@pytest.mark.parametrize(
    "body",
    [
        {"definition": SIMPLE_DEFINITION},
        {"name": "", "definition": SIMPLE_DEFINITION},
        {"name": "p", "definition": SIMPLE_DEFINITION, "priority": 10},
        {"name": "p", "definition": SIMPLE_DEFINITION, "priority": -1},
        {"name": "p", "definition": SIMPLE_DEFINITION, "timeoutSeconds": 0},
        {"name": "p", "definition": [1, 2]},
        {"name": "p"},
    ],
)
async def test_create_with_invalid_settings_is_422(admin: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await admin.post("/api/workflows", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_failed"


# --- list and detail ------------------------------------------------------------------------------


async def test_list_searches_name_and_description_and_pages(admin: httpx.AsyncClient) -> None:
    await create(admin, "alpha-sync", description="syncs the CRM")
    await create(admin, "beta")
    await create(admin, "gamma", description="Nightly CRM export")
    await create(admin, "100%_done")

    everything = (await admin.get("/api/workflows")).json()
    assert set(everything) == {"workflows", "total", "page", "limit", "nextCursor"}
    assert everything["total"] == 4 and everything["nextCursor"] is None
    assert [w["name"] for w in everything["workflows"]] == ["100%_done", "alpha-sync", "beta", "gamma"]

    crm = (await admin.get("/api/workflows", params={"q": "crm"})).json()
    assert [w["name"] for w in crm["workflows"]] == ["alpha-sync", "gamma"] and crm["total"] == 2
    # LIKE wildcards in the search are literal characters.
    assert [w["name"] for w in (await admin.get("/api/workflows", params={"q": "%_"})).json()["workflows"]] == [
        "100%_done"
    ]

    page2 = (await admin.get("/api/workflows", params={"page": 2, "limit": 3})).json()
    assert page2["total"] == 4 and page2["page"] == 2 and page2["limit"] == 3
    assert [w["name"] for w in page2["workflows"]] == ["gamma"]
    assert (await admin.get("/api/workflows", params={"limit": 0})).status_code == 422


async def test_list_hides_archived_unless_asked(admin: httpx.AsyncClient) -> None:
    kept = (await create(admin, "kept"))["workflow"]
    gone = (await create(admin, "gone"))["workflow"]
    assert (await admin.delete(f"/api/workflows/{gone['id']}")).status_code == 200

    active = (await admin.get("/api/workflows")).json()
    assert [w["id"] for w in active["workflows"]] == [kept["id"]] and active["total"] == 1
    archived = (await admin.get("/api/workflows", params={"archived": "true"})).json()
    assert [w["id"] for w in archived["workflows"]] == [gone["id"]] and archived["workflows"][0]["archived"] is True


async def test_list_reports_latest_and_published_version_numbers(admin: httpx.AsyncClient) -> None:
    workflow_id = (await create(admin, "numbers"))["workflow"]["id"]
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 200
    await save_version(admin, workflow_id, TWO_STEPS)
    listed = (await admin.get("/api/workflows")).json()["workflows"][0]
    assert listed["latestVersion"] == 2 and listed["publishedVersion"] == 1


async def test_detail_lists_versions_newest_first_without_definitions(admin: httpx.AsyncClient) -> None:
    workflow_id = (await create(admin, "detail"))["workflow"]["id"]
    await save_version(admin, workflow_id, TWO_STEPS)
    await admin.post(f"/api/workflows/{workflow_id}/publish")
    await save_version(admin, workflow_id, SIMPLE_DEFINITION)

    r = await admin.get(f"/api/workflows/{workflow_id}")
    assert r.status_code == 200
    workflow = r.json()["workflow"]
    assert set(workflow) == WORKFLOW_KEYS | {"versions"}
    assert workflow["latestVersion"] == 3 and workflow["publishedVersion"] == 2
    versions = workflow["versions"]
    assert [v["number"] for v in versions] == [3, 2, 1]
    assert [v["published"] for v in versions] == [False, True, False]
    assert all("definition" not in v for v in versions)
    assert set(versions[0]) >= {"id", "number", "published", "publishedAt", "createdBy", "createdAt"}
    assert versions[1]["publishedAt"] is not None and versions[0]["publishedAt"] is None


async def test_every_version_says_its_state_draft_published_or_superseded(admin: httpx.AsyncClient) -> None:
    """One vocabulary from the API to the CLI to the dashboard (issue 13, item 8)."""
    workflow_id = (await create(admin, "states"))["workflow"]["id"]
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).json()["version"]["state"] == "published"
    await save_version(admin, workflow_id, TWO_STEPS)
    await admin.post(f"/api/workflows/{workflow_id}/publish")
    assert (await save_version(admin, workflow_id, SIMPLE_DEFINITION))["state"] == "draft"

    versions = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["versions"]
    assert [(v["number"], v["state"]) for v in versions] == [(3, "draft"), (2, "published"), (1, "superseded")]
    listed = (await admin.get(f"/api/workflows/{workflow_id}/versions")).json()["versions"]
    assert [v["state"] for v in listed] == ["draft", "published", "superseded"]
    assert (await admin.get(f"/api/workflows/{workflow_id}/versions/1")).json()["version"]["state"] == "superseded"


# --- unknown and malformed ids --------------------------------------------------------------------

WORKFLOW_ROUTES = [
    ("GET", "/api/workflows/{id}", None),
    ("PATCH", "/api/workflows/{id}", {"description": "x"}),
    ("DELETE", "/api/workflows/{id}", None),
    ("POST", "/api/workflows/{id}/versions", {"definition": SIMPLE_DEFINITION}),
    ("GET", "/api/workflows/{id}/versions", None),
    ("GET", "/api/workflows/{id}/versions/1", None),
    ("POST", "/api/workflows/{id}/publish", None),
    ("GET", "/api/workflows/{id}/export", None),
]


@pytest.mark.parametrize("ident", [UNKNOWN_ID, "not-an-id", "12345"])
@pytest.mark.parametrize(("method", "path", "body"), WORKFLOW_ROUTES)
async def test_unknown_or_malformed_workflow_id_is_404(
    admin: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None, ident: str
) -> None:
    r = await admin.request(method, path.format(id=ident), json=body)
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("number", ["2", "0", "-1", "abc", "1.0", "99999999999999999999"])
async def test_unknown_or_malformed_version_number_is_404(admin: httpx.AsyncClient, number: str) -> None:
    workflow_id = (await create(admin, "v"))["workflow"]["id"]
    r = await admin.get(f"/api/workflows/{workflow_id}/versions/{number}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# --- settings and archive -------------------------------------------------------------------------


async def test_patch_changes_only_the_given_settings(admin: httpx.AsyncClient, hub: Hub) -> None:
    created = (await create(admin, "settings", runnerType="linux", timeoutSeconds=60, labels=["a"]))["workflow"]
    r = await admin.patch(
        f"/api/workflows/{created['id']}",
        json={"name": "renamed", "priority": 2, "labels": ["x", "y"], "runnerType": None},
    )
    assert r.status_code == 200
    workflow = r.json()["workflow"]
    assert workflow["name"] == "renamed" and workflow["priority"] == 2 and workflow["labels"] == ["x", "y"]
    assert workflow["runnerType"] is None and workflow["timeoutSeconds"] == 60
    assert workflow["latestVersion"] == 1 and workflow["updatedAt"] > created["updatedAt"]
    assert (await admin.get(f"/api/workflows/{created['id']}")).json()["workflow"]["name"] == "renamed"
    actions = await audit_rows(hub, created["id"])
    assert actions[-1][0] == "workflow.update"
    assert actions[-1][2] == {"name": "renamed", "priority": 2, "labels": ["x", "y"], "runnerType": None}


async def test_an_empty_patch_changes_and_records_nothing(admin: httpx.AsyncClient, hub: Hub) -> None:
    created = (await create(admin, "untouched"))["workflow"]
    r = await admin.patch(f"/api/workflows/{created['id']}", json={})
    assert r.status_code == 200 and r.json()["workflow"] == created
    assert [a for a, _, _ in await audit_rows(hub, created["id"])] == ["workflow.create"]


@pytest.mark.parametrize("body", [{"name": None}, {"priority": None}, {"priority": 11}, {"archived": None}])
async def test_patch_with_invalid_values_is_422(admin: httpx.AsyncClient, body: dict[str, Any]) -> None:
    workflow_id = (await create(admin, "strict"))["workflow"]["id"]
    r = await admin.patch(f"/api/workflows/{workflow_id}", json=body)
    assert r.status_code == 422, r.text


async def test_patch_to_a_taken_name_is_a_conflict(admin: httpx.AsyncClient) -> None:
    await create(admin, "first")
    second = (await create(admin, "second"))["workflow"]
    r = await admin.patch(f"/api/workflows/{second['id']}", json={"name": "first"})
    assert r.status_code == 409
    assert (await admin.get(f"/api/workflows/{second['id']}")).json()["workflow"]["name"] == "second"


async def test_delete_archives_and_patch_restores(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = (await create(admin, "archive-me"))["workflow"]["id"]
    r = await admin.delete(f"/api/workflows/{workflow_id}")
    assert r.status_code == 200 and r.json()["workflow"]["archived"] is True
    # Archiving twice is harmless and records nothing new.
    assert (await admin.delete(f"/api/workflows/{workflow_id}")).json()["workflow"]["archived"] is True
    detail = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert detail["archived"] is True and [v["number"] for v in detail["versions"]] == [1]
    assert [a for a, _, _ in await audit_rows(hub, workflow_id)] == ["workflow.create", "workflow.archive"]

    restored = await admin.patch(f"/api/workflows/{workflow_id}", json={"archived": False})
    assert restored.status_code == 200 and restored.json()["workflow"]["archived"] is False


# --- versions and publishing ----------------------------------------------------------------------


async def test_saving_versions_numbers_them_and_keeps_them_drafts(admin: httpx.AsyncClient) -> None:
    workflow_id = (await create(admin, "drafts"))["workflow"]["id"]
    second = await save_version(admin, workflow_id, TWO_STEPS)
    third = await save_version(admin, workflow_id, SIMPLE_DEFINITION)
    assert (second["number"], third["number"]) == (2, 3)
    assert set(second) == VERSION_KEYS and second["published"] is False and second["definition"] == TWO_STEPS

    fetched = await admin.get(f"/api/workflows/{workflow_id}/versions/2")
    assert fetched.status_code == 200 and fetched.json()["version"] == second

    listed = (await admin.get(f"/api/workflows/{workflow_id}/versions")).json()
    assert set(listed) == {"versions", "total", "page", "limit", "nextCursor"}
    assert listed["total"] == 3 and [v["number"] for v in listed["versions"]] == [3, 2, 1]
    assert all("definition" not in v for v in listed["versions"])
    page = (await admin.get(f"/api/workflows/{workflow_id}/versions", params={"limit": 2, "page": 2})).json()
    assert [v["number"] for v in page["versions"]] == [1] and page["total"] == 3


async def test_concurrent_saves_get_distinct_consecutive_numbers(admin: httpx.AsyncClient) -> None:
    workflow_id = (await create(admin, "race"))["workflow"]["id"]
    responses = await asyncio.gather(
        *(admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": TWO_STEPS}) for _ in range(8))
    )
    assert all(r.status_code == 201 for r in responses)
    assert sorted(r.json()["version"]["number"] for r in responses) == list(range(2, 10))


async def test_saving_an_invalid_or_oversize_version_is_refused(admin: httpx.AsyncClient, hub: Hub) -> None:
    workflow_id = (await create(admin, "guarded"))["workflow"]["id"]
    r = await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": CYCLE})
    assert r.status_code == 422
    assert r.json()["error"]["details"] == {
        "problems": [{"message": "graph has a cycle: a -> b -> a", "node": "b", "edge": 2}]
    }
    big = {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "x" * 700_000}}]}
    assert hub.settings.max_definition_bytes < 700_000
    r = await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": big})
    assert r.status_code == 413
    assert (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["latestVersion"] == 1


async def test_publish_promotes_the_latest_draft_and_unpublishes_the_previous(admin: httpx.AsyncClient) -> None:
    workflow_id = (await create(admin, "publishing"))["workflow"]["id"]

    first = await admin.post(f"/api/workflows/{workflow_id}/publish")
    assert first.status_code == 200
    assert set(first.json()) == {"workflow", "version"}
    v1 = first.json()["version"]
    assert v1["number"] == 1 and v1["published"] is True and v1["publishedAt"] is not None
    assert first.json()["workflow"]["publishedVersion"] == 1

    # Publishing again with no newer draft is a conflict.
    again = await admin.post(f"/api/workflows/{workflow_id}/publish")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    v2 = await save_version(admin, workflow_id, TWO_STEPS)
    assert v2["published"] is False
    v1_now = (await admin.get(f"/api/workflows/{workflow_id}/versions/1")).json()["version"]
    assert v1_now["published"] is True  # a new draft does not touch the published version

    second = await admin.post(f"/api/workflows/{workflow_id}/publish")
    assert second.status_code == 200 and second.json()["version"]["number"] == 2
    assert second.json()["workflow"]["publishedVersion"] == 2

    versions = {
        v["number"]: v for v in (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["versions"]
    }
    assert versions[2]["published"] is True and versions[1]["published"] is False
    assert versions[1]["publishedAt"] == v1["publishedAt"]
    old = (await admin.get(f"/api/workflows/{workflow_id}/versions/1")).json()["version"]
    assert old["definition"] == SIMPLE_DEFINITION and old["id"] == v1["id"]  # published content never changes


async def test_publishing_an_earlier_version_rolls_back_and_queued_executions_keep_theirs(
    admin: httpx.AsyncClient,
) -> None:
    workflow_id = (await create(admin, "rolling", labels=["nowhere"]))["workflow"]["id"]
    await admin.post(f"/api/workflows/{workflow_id}/publish")
    await save_version(admin, workflow_id, TWO_STEPS)
    await admin.post(f"/api/workflows/{workflow_id}/publish")
    queued = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]

    async def version_of(execution: dict[str, Any]) -> int:
        answer = await admin.get(f"/api/executions/{execution['id']}")
        number: int = answer.json()["execution"]["versionNumber"]
        return number

    assert await version_of(queued) == 2

    back = await admin.post(f"/api/workflows/{workflow_id}/publish", json={"version": 1})
    assert back.status_code == 200, back.text
    assert back.json()["version"]["number"] == 1 and back.json()["version"]["published"] is True
    assert back.json()["workflow"]["publishedVersion"] == 1 and back.json()["workflow"]["latestVersion"] == 2
    states = {
        v["number"]: v["state"] for v in (await admin.get(f"/api/workflows/{workflow_id}/versions")).json()["versions"]
    }
    assert states == {1: "published", 2: "superseded"}
    # What was created before keeps its version; what is created now runs version 1.
    assert await version_of(queued) == 2
    after = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]
    assert await version_of(after) == 1
    entries = (await admin.get("/api/audit", params={"action": "workflow.publish", "entityId": workflow_id})).json()
    assert entries["entries"][0]["details"] == {"version": 1, "previousVersion": 2}

    # And forward again; the published one, an unknown one, and a nonsense one are refused.
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish", json={"version": 2})).status_code == 200
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish", json={"version": 2})).status_code == 409
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish", json={"version": 9})).status_code == 404
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish", json={"version": 0})).status_code == 422
    # Without a version, the latest must still be a draft.
    assert (await admin.post(f"/api/workflows/{workflow_id}/publish")).status_code == 409


async def test_published_version_is_what_executions_start_from(admin: httpx.AsyncClient) -> None:
    workflow_id = (await create(admin, "runnable"))["workflow"]["id"]

    async def run(workflow: str) -> httpx.Response:
        return await admin.post("/api/executions", json={"workflowId": workflow})

    assert (await run(str(uuid.uuid4()))).status_code == 404
    assert (await run("garbage")).status_code == 404
    refused = await run(workflow_id)
    assert refused.status_code == 409 and "has no published version" in refused.json()["error"]["message"]

    await admin.post(f"/api/workflows/{workflow_id}/publish")
    await save_version(admin, workflow_id, TWO_STEPS)  # a draft after it: not what runs
    created = await run(workflow_id)
    assert created.status_code == 201
    execution = (await admin.get(f"/api/executions/{created.json()['execution']['id']}")).json()["execution"]
    assert execution["workflowName"] == "runnable" and execution["versionNumber"] == 1

    await admin.delete(f"/api/workflows/{workflow_id}")
    archived = await run(workflow_id)
    assert archived.status_code == 409 and "archived" in archived.json()["error"]["message"]


# --- export and import ----------------------------------------------------------------------------


async def test_export_carries_settings_and_the_published_definition(admin: httpx.AsyncClient) -> None:
    workflow_id = (
        await create(
            admin,
            "portable",
            description="d",
            runnerType="linux",
            labels=["l"],
            priority=7,
            timeoutSeconds=30,
            maxConcurrent=2,
            concurrencyKey="{{ inputs.customer }}",
        )
    )["workflow"]["id"]
    draft_only = (await admin.get(f"/api/workflows/{workflow_id}/export")).json()["export"]
    assert draft_only["definition"] == SIMPLE_DEFINITION  # no published version: the latest

    await admin.post(f"/api/workflows/{workflow_id}/publish")
    await save_version(admin, workflow_id, TWO_STEPS)
    r = await admin.get(f"/api/workflows/{workflow_id}/export")
    assert r.status_code == 200
    assert r.json() == {
        "export": {
            "format": "exekra.workflow/v1",
            "name": "portable",
            "description": "d",
            "runnerType": "linux",
            "labels": ["l"],
            "priority": 7,
            "timeoutSeconds": 30,
            "retry": None,
            "maxConcurrent": 2,
            "concurrencyKey": "{{ inputs.customer }}",
            "definition": SIMPLE_DEFINITION,
        }
    }


async def test_export_import_round_trip(admin: httpx.AsyncClient, hub: Hub) -> None:
    source = (await create(admin, "source", description="moved", labels=["x"], priority=3))["workflow"]
    document = (await admin.get(f"/api/workflows/{source['id']}/export")).json()["export"]

    # Same name on the same hub: a conflict unless importing as a new version.
    assert (await admin.post("/api/workflows/import", json=document)).status_code == 409

    renamed = {**document, "name": "copy"}
    r = await admin.post("/api/workflows/import", json=renamed)
    assert r.status_code == 201
    copied, version = r.json()["workflow"], r.json()["version"]
    assert copied["id"] != source["id"] and copied["name"] == "copy"
    assert (copied["description"], copied["labels"], copied["priority"]) == ("moved", ["x"], 3)
    assert version["number"] == 1 and version["published"] is False and version["definition"] == SIMPLE_DEFINITION
    assert (await admin.get(f"/api/workflows/{copied['id']}/export")).json()["export"] == renamed

    # The whole `{"export": ...}` answer is accepted as it is.
    wrapped = {"export": {**document, "name": "wrapped", "definition": TWO_STEPS}}
    r = await admin.post("/api/workflows/import", json=wrapped)
    assert r.status_code == 201 and r.json()["version"]["definition"] == TWO_STEPS

    as_version = {**document, "definition": TWO_STEPS, "priority": 9}
    r = await admin.post("/api/workflows/import", params={"mode": "new-version"}, json=as_version)
    assert r.status_code == 201
    assert r.json()["workflow"]["id"] == source["id"] and r.json()["workflow"]["priority"] == 3  # settings kept
    assert r.json()["version"]["number"] == 2 and r.json()["version"]["definition"] == TWO_STEPS

    # new-version with a name that does not exist yet creates the workflow.
    r = await admin.post("/api/workflows/import", params={"mode": "new-version"}, json={**document, "name": "fresh"})
    assert r.status_code == 201 and r.json()["version"]["number"] == 1

    actions = [a for a, _, _ in await audit_rows(hub, source["id"])]
    assert actions == ["workflow.create", "workflow.import"]
    assert [a for a, _, _ in await audit_rows(hub, copied["id"])] == ["workflow.import"]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"format": "something/v2"}, 422),
        ({"format": None}, 422),
        ({"definition": CYCLE}, 422),
        ({"name": ""}, 422),
    ],
)
async def test_import_refuses_bad_documents(admin: httpx.AsyncClient, change: dict[str, Any], status: int) -> None:
    document = {"format": "exekra.workflow/v1", "name": "imported", "definition": SIMPLE_DEFINITION, **change}
    r = await admin.post("/api/workflows/import", json=document)
    assert r.status_code == status, r.text
    assert (await admin.get("/api/workflows")).json()["total"] == 0


async def test_import_with_an_unknown_mode_is_422(admin: httpx.AsyncClient) -> None:
    document = {"format": "exekra.workflow/v1", "name": "m", "definition": SIMPLE_DEFINITION}
    assert (await admin.post("/api/workflows/import", params={"mode": "merge"}, json=document)).status_code == 422


# --- audit ----------------------------------------------------------------------------------------


async def test_every_change_is_audited_with_the_acting_user(make_client: ClientFactory, hub: Hub) -> None:
    developer = await make_client("DEVELOPER")
    developer_id = await my_user_id(developer)
    workflow_id = (await create(developer, "audited"))["workflow"]["id"]
    await developer.patch(f"/api/workflows/{workflow_id}", json={"description": "new"})
    await save_version(developer, workflow_id, TWO_STEPS)
    await developer.post(f"/api/workflows/{workflow_id}/publish")
    await developer.delete(f"/api/workflows/{workflow_id}")

    rows = await audit_rows(hub, workflow_id)
    assert [action for action, _, _ in rows] == [
        "workflow.create",
        "workflow.update",
        "workflow.version.create",
        "workflow.publish",
        "workflow.archive",
    ]
    assert {actor for _, actor, _ in rows} == {developer_id}
    assert rows[2][2] == {"version": 2}
    assert rows[3][2] == {"version": 2, "previousVersion": None}


async def test_refused_changes_write_no_audit_rows(admin: httpx.AsyncClient, hub: Hub) -> None:
    await create(admin, "only")
    await admin.post("/api/workflows", json={"name": "only", "definition": SIMPLE_DEFINITION})
    await admin.post("/api/workflows", json={"name": "cyclic", "definition": CYCLE})
    async with hub.db.session() as session:
        actions = (await session.execute(text("SELECT action FROM audit_log WHERE action LIKE 'workflow.%'"))).scalars()
        assert list(actions) == ["workflow.create"]


# --- roles (SPEC §10.2) ---------------------------------------------------------------------------

ROLES = ["ADMIN", "DEVELOPER", "OPERATOR", None]
READS = [
    ("GET", "/api/workflows", 200),
    ("GET", "/api/workflows/{id}", 200),
    ("GET", "/api/workflows/{id}/versions", 200),
    ("GET", "/api/workflows/{id}/versions/1", 200),
]
WRITES = [
    ("POST", "/api/workflows", 201),
    ("PATCH", "/api/workflows/{id}", 200),
    ("DELETE", "/api/workflows/{id}", 200),
    ("POST", "/api/workflows/{id}/versions", 201),
    ("POST", "/api/workflows/{id}/publish", 200),
    ("GET", "/api/workflows/{id}/export", 200),
    ("POST", "/api/workflows/import", 201),
]
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/workflows"): {"name": "by-role", "definition": SIMPLE_DEFINITION},
    ("PATCH", "/api/workflows/{id}"): {"description": "by role"},
    ("POST", "/api/workflows/{id}/versions"): {"definition": TWO_STEPS},
    ("POST", "/api/workflows/import"): {
        "format": "exekra.workflow/v1",
        "name": "imported-by-role",
        "definition": SIMPLE_DEFINITION,
    },
}


def _expected(role: str | None, ok: int, *, write: bool) -> int:
    if role is None:
        return 401
    if write and role == "OPERATOR":
        return 403
    return ok


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix(make_client: ClientFactory, admin: httpx.AsyncClient, role: str | None) -> None:
    """Reads: any signed-in user; writes, export and import: ADMIN and DEVELOPER; anonymous: 401."""
    caller = await make_client(role)
    cases = [(*r, False) for r in READS] + [(*w, True) for w in WRITES]
    wrong = []
    for index, (method, path, ok, write) in enumerate(cases):
        workflow_id = (await create(admin, f"matrix-{index}"))["workflow"]["id"]
        body = copy.deepcopy(BODIES.get((method, path)))
        r = await caller.request(method, path.format(id=workflow_id), json=body)
        expected = _expected(role, ok, write=write)
        if r.status_code != expected:
            wrong.append(f"{method} {path}: {r.status_code} (expected {expected}) {r.text}")
        elif expected in (401, 403):
            assert r.json()["error"]["code"] == ("not_authenticated" if expected == 401 else "forbidden")
            assert (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["latestVersion"] == 1
    assert wrong == []
