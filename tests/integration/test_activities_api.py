"""The activity catalogue (`GET /api/activities`) and the designer's `ui` object in stored definitions."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from exekra.workflow.activities import load_activities

from .conftest import SIMPLE_DEFINITION, ClientFactory


async def test_the_catalogue_lists_every_activity_the_hub_accepts_with_json_schemas(
    make_client: ClientFactory,
) -> None:
    operator = await make_client("OPERATOR")
    r = await operator.get("/api/activities")
    assert r.status_code == 200
    activities = r.json()["activities"]
    assert {a["name"] for a in activities} == set(load_activities())
    for entry in activities:
        assert {"name", "category", "description", "params", "outputs", "capability"} <= set(entry)
        jsonschema.Draft202012Validator.check_schema(entry["params"])
        jsonschema.Draft202012Validator.check_schema(entry["outputs"])
    by_name = {a["name"]: a for a in activities}
    assert by_name["http.request"]["params"]["required"] == ["url"]
    assert by_name["control.if"]["category"] == "Flow"
    assert by_name["browser.open"]["capability"] == "browser"
    assert [(a["category"], a["name"]) for a in activities] == sorted((a["category"], a["name"]) for a in activities)
    assert "result" in by_name["control.if"]["outputs"]["properties"]


async def test_the_catalogue_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/activities")).status_code == 401


@pytest.mark.parametrize("ui", [{"positions": {"hello": {"x": 12.5, "y": -3}}, "zoom": 0.8}, {}])
async def test_a_definitions_ui_object_is_stored_and_returned_unchanged(admin: httpx.AsyncClient, ui: dict) -> None:
    definition = {**SIMPLE_DEFINITION, "ui": ui}
    r = await admin.post("/api/workflows", json={"name": f"ui-{len(ui)}", "definition": definition})
    assert r.status_code == 201, r.text
    workflow_id = r.json()["workflow"]["id"]
    stored = (await admin.get(f"/api/workflows/{workflow_id}/versions/1")).json()["version"]["definition"]
    assert stored == definition


async def test_a_ui_that_is_not_an_object_is_refused_with_its_problem(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/workflows", json={"name": "bad-ui", "definition": {**SIMPLE_DEFINITION, "ui": [1]}})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["problems"] == [{"message": "ui must be an object"}]
