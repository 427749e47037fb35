"""Runners declare what they can run (docs/runner.md): the runner object, the activity catalogue, definition checks
and the waiting reason of an execution no runner can run. Matching in both queue modes: queue/test_declared_activities.py."""

from __future__ import annotations

import httpx

from exekra.hub.context import Hub
from exekra.workflow.catalogue import EVERY_RUNNER

from .conftest import SIMPLE_DEFINITION
from .protocol import ProtocolRunner, create_execution, declaration, publish_workflow

BROWSER = {"nodes": [{"id": "open", "activity": "browser.open", "params": {"url": "http://127.0.0.1/"}}]}
GREET = {"nodes": [{"id": "greet", "activity": "acme.greet", "params": {"what": "world"}}]}


async def signed_in(admin: httpx.AsyncClient, http: httpx.AsyncClient, name: str, **auth: object) -> ProtocolRunner:
    runner = await ProtocolRunner.register(admin, http, name)
    assert (await runner.auth(**auth)).status_code == 200  # type: ignore[arg-type]
    assert (await runner.heartbeat()).status_code == 200
    return runner


async def runner_object(admin: httpx.AsyncClient, runner: ProtocolRunner) -> dict[str, object]:
    r = await admin.get(f"/api/runners/{runner.runner_id}")
    assert r.status_code == 200, r.text
    found: dict[str, object] = r.json()["runner"]
    return found


async def test_an_older_runner_that_declares_nothing_has_the_builtins_that_need_no_capability(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    older = await signed_in(admin, client, "older")
    found = await runner_object(admin, older)
    assert found["activities"] == sorted(EVERY_RUNNER) and found["capabilities"] == []
    plain = await publish_workflow(admin, "plain", SIMPLE_DEFINITION)
    browsing = await publish_workflow(admin, "browsing", BROWSER)
    waiting = await create_execution(admin, browsing)
    assert (await older.poll()).status_code == 204  # never handed work it would fail
    runs = await create_execution(admin, plain)
    await older.take(runs["id"])
    assert (await admin.get(f"/api/executions/{waiting['id']}")).json()["execution"]["status"] == "QUEUED"


async def test_a_runner_object_carries_the_activities_and_capabilities_it_declared(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner = await signed_in(
        admin, client, "chromium", catalogue=declaration("browser.open", "acme.greet", capabilities=("browser",))
    )
    found = await runner_object(admin, runner)
    assert found["capabilities"] == ["browser"]
    assert {"browser.open", "acme.greet", "shell.run"} <= set(found["activities"])  # type: ignore[arg-type]
    listed = (await admin.get("/api/runners")).json()["runners"]
    assert listed[0]["activities"] == found["activities"]
    page = await admin.get(f"/runners/{runner.runner_id}")
    assert page.status_code == 200 and "acme.greet" in page.text and ">browser<" in page.text


async def test_the_catalogue_lists_the_builtins_plus_what_registered_runners_declare(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    before = {a["name"] for a in (await admin.get("/api/activities")).json()["activities"]}
    assert "browser.open" in before and "acme.greet" not in before
    await signed_in(admin, client, "acme", catalogue=declaration("acme.greet"))
    activities = (await admin.get("/api/activities")).json()["activities"]
    greet = next(a for a in activities if a["name"] == "acme.greet")
    assert greet["params"] == {"type": "object", "properties": {"what": {"type": "string"}}}
    assert greet["outputs"] == {"type": "object"} and greet["capability"] is None
    assert (greet["category"], greet["package"], greet["version"]) == ("Plugins", "acme-exekra", "1.2.3")
    assert len([a for a in activities if a["name"] == "shell.run"]) == 1  # built-ins are listed once


async def test_a_plugin_activity_only_runners_declare_is_accepted_and_an_unknown_one_is_422_naming_it(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    r = await admin.post("/api/workflows", json={"name": "greeter", "definition": GREET})
    assert r.status_code == 422 and "unknown activity 'acme.greet'" in r.json()["error"]["message"]
    runner = await signed_in(admin, client, "acme", catalogue=declaration("acme.greet"))
    r = await admin.post("/api/workflows", json={"name": "greeter", "definition": GREET})
    assert r.status_code == 201, r.text
    workflow_id = r.json()["workflow"]["id"]
    unknown = {"nodes": [{"id": "nope", "activity": "acme.nope"}]}
    r = await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": unknown})
    assert r.status_code == 422 and "unknown activity 'acme.nope'" in r.json()["error"]["message"]
    assert (await admin.delete(f"/api/runners/{runner.runner_id}")).status_code == 200
    r = await admin.post(f"/api/workflows/{workflow_id}/publish")  # nobody declares it any more
    assert r.status_code == 422 and "unknown activity 'acme.greet'" in r.json()["error"]["message"]


async def test_a_heartbeat_asks_for_the_catalogue_when_its_digest_differs_and_a_resent_one_is_stored(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    runner = await signed_in(admin, client, "r", catalogue=declaration(digest="a" * 64))
    assert (await runner.heartbeat(catalogueDigest="a" * 64)).json()["catalogueWanted"] is False
    assert (await runner.heartbeat()).json()["catalogueWanted"] is False  # an older runner sends no digest
    assert (await runner.heartbeat(catalogueDigest="b" * 64)).json()["catalogueWanted"] is True
    resent = declaration("acme.greet", digest="b" * 64)
    r = await runner.heartbeat(catalogueDigest="b" * 64, catalogue=resent)
    assert r.json()["catalogueWanted"] is False
    assert "acme.greet" in (await runner_object(admin, runner))["activities"]  # type: ignore[operator]


async def test_an_execution_no_runner_can_run_stays_queued_with_its_reason_until_one_signs_in(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    older = await signed_in(admin, client, "older")
    workflow_id = await publish_workflow(admin, "browsing", BROWSER)
    created = await create_execution(admin, workflow_id)
    reason = "no runner declares browser.open"
    assert created["waitingReason"] == reason
    assert (await older.poll()).status_code == 204
    detail = (await admin.get(f"/api/executions/{created['id']}")).json()["execution"]
    assert (detail["status"], detail["waitingReason"]) == ("QUEUED", reason)
    listed = (await admin.get("/api/executions", params={"status": "QUEUED"})).json()["executions"]
    assert [e["waitingReason"] for e in listed] == [reason]
    page = await admin.get(f"/executions/{created['id']}")
    assert page.status_code == 200 and reason in page.text

    able = await signed_in(admin, client, "chromium", catalogue=declaration("browser.open", capabilities=("browser",)))
    await able.take(created["id"])
    detail = (await admin.get(f"/api/executions/{created['id']}")).json()["execution"]
    assert (detail["status"], detail["waitingReason"]) == ("ASSIGNED", None)


async def test_a_runner_that_declares_only_some_of_the_activities_does_not_take_the_execution(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    both = {"nodes": [*BROWSER["nodes"], GREET["nodes"][0]], "edges": [{"from": "open", "to": "greet"}]}
    half = await signed_in(admin, client, "half", catalogue=declaration("acme.greet"))
    other = await signed_in(admin, client, "other", catalogue=declaration("browser.open", capabilities=("browser",)))
    created = await create_execution(admin, await publish_workflow(admin, "both", both))
    assert created["waitingReason"] == "no single runner declares all of acme.greet, browser.open"
    assert (await half.poll()).status_code == 204 and (await other.poll()).status_code == 204


async def test_a_pinned_execution_waits_for_its_runner_to_declare_the_activity(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    pinned = await signed_in(admin, client, "pinned")
    await signed_in(admin, client, "able", catalogue=declaration("browser.open", capabilities=("browser",)))
    workflow_id = await publish_workflow(admin, "browsing", BROWSER)
    created = await create_execution(admin, workflow_id, runnerId=pinned.runner_id)
    assert created["waitingReason"] == "the pinned runner does not declare browser.open"
    assert (await pinned.poll()).status_code == 204
    assert (await pinned.auth(declaration("browser.open", capabilities=("browser",)))).status_code == 200
    await pinned.take(created["id"])
