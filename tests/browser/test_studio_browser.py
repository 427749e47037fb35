"""Studio and the operator pages in real Chromium, as a new user: build a workflow on the canvas, fix what
the hub refuses, publish, run, schedule, call a webhook, use a credential, find the run in the audit log.

Also: the JSON <-> canvas round trip (every example of docs/, and generated definitions), keyboard access,
axe-core's WCAG checks and the layout at 1280 and 390 pixels.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import PASSWORD, HubProcess, RunnerProcess, wait_status, wait_until

from .conftest import publish, register_runner, screenshot, sign_in, start_registered_runner
from .studio_support import axe_violations, docs_examples, horizontal_overflow, valid_definitions, without_ui

pytestmark = pytest.mark.browser

STARTER = {"nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "hello"}}], "edges": []}


@pytest.fixture(scope="module")
def newcomer(admin_api: httpx.Client) -> dict[str, str]:
    """A user made for this module (an ADMIN: the audit log is theirs to read too)."""
    email = f"newcomer-{secrets.token_hex(3)}@browser.test"
    r = admin_api.post("/api/auth/register", json={"email": email, "password": PASSWORD, "role": "ADMIN"})
    assert r.status_code == 201, r.text
    return {"email": email, "password": PASSWORD}


@pytest.fixture
def studio(page: Any, newcomer: dict[str, str]) -> Any:
    sign_in(page, newcomer["email"], newcomer["password"])
    return page


def open_design(page: Any, workflow_id: str) -> None:
    page.goto(f"/workflows/{workflow_id}/design")
    page.wait_for_selector(".sx-palette-item")


def node(page: Any, node_id: str) -> Any:
    return page.locator(f".react-flow__node[data-id='{node_id}']")


def add_after(page: Any, after: str | None, activity: str) -> None:
    """Select `after` on the canvas, then pick `activity` in the palette (it is added and connected)."""
    if after:
        node(page, after).click()
    page.fill("#sx-palette-search", activity)
    page.click(f".sx-palette-item:has-text('{activity}')")
    page.fill("#sx-palette-search", "")


def rename_selected(page: Any, new_id: str) -> None:
    field = page.locator(".sx-inspector label:has-text('Id') input")
    field.fill(new_id)
    field.press("Enter")
    wait_until(lambda: node(page, new_id).count() == 1, 5, 0.05, f"node {new_id}")


def set_param(page: Any, name: str, value: str) -> None:
    field = page.locator(f".sx-field[data-param='{name}'] input, .sx-field[data-param='{name}'] textarea").first
    field.fill(value)
    field.blur()


def drag_between(page: Any, start: Any, end: Any) -> None:
    """Press on `start`, move to `end` in small steps and let go, as a hand does."""
    a, b = start.bounding_box(), end.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()


def json_tab_definition(page: Any) -> dict[str, Any]:
    page.click("#sx-tab-json")
    definition: dict[str, Any] = page.evaluate("() => JSON.parse(document.getElementById('sx-json').value)")
    return definition


# --- the round trip ---------------------------------------------------------------------------------------------


@pytest.fixture
def blank_design(studio: Any, admin_api: httpx.Client) -> Iterator[Any]:
    workflow_id = publish(admin_api, f"roundtrip-{secrets.token_hex(3)}", STARTER, [])
    open_design(studio, workflow_id)
    yield studio


@pytest.mark.parametrize(("name", "definition"), docs_examples(), ids=[name for name, _ in docs_examples()])
def test_every_docs_example_goes_through_the_json_tab_and_canvas_unchanged(
    blank_design: Any, name: str, definition: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    page = blank_design
    page.click("#sx-tab-json")
    page.fill("#sx-json", json.dumps(definition, indent=1))
    page.click("text=Apply to canvas")
    page.click("#sx-tab-canvas")
    for node_def in definition["nodes"]:
        node(page, node_def["id"]).wait_for(state="visible", timeout=10_000)  # drawn after the tab switch
    expect(page.locator(".react-flow__edge")).to_have_count(len(definition.get("edges", [])))
    back = json_tab_definition(page)
    assert without_ui(back) == without_ui(definition)
    assert set(back["ui"]["positions"]) == {n["id"] for n in definition["nodes"]}


def test_a_moved_node_keeps_its_place_through_a_save(blank_design: Any, admin_api: httpx.Client) -> None:
    page = blank_design
    box = node(page, "hello").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 120, steps=8)
    page.mouse.up()
    moved = json_tab_definition(page)["ui"]["positions"]["hello"]
    page.click("#sx-tab-canvas")
    add_after(page, "hello", "log.message")
    page.click("button:has-text('Save draft')")
    page.wait_for_selector(".sx-status-ok")
    workflow_id = page.url.split("/")[-2]
    stored = admin_api.get(f"/api/workflows/{workflow_id}/versions/2").json()["version"]["definition"]
    assert stored["ui"]["positions"]["hello"] == moved
    page.reload()
    page.wait_for_selector(".sx-palette-item")
    assert json_tab_definition(page)["ui"]["positions"]["hello"] == moved


def test_generated_definitions_come_back_unchanged_through_the_studio_model(blank_design: Any) -> None:
    page = blank_design
    checked: list[int] = []

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(valid_definitions())
    def round_trip(definition: dict[str, Any]) -> None:
        back = page.evaluate("(d) => window.ExekraStudio.model.roundTrip(d)", definition)
        laid_out = page.evaluate(
            "(d) => { const m = window.ExekraStudio.model; const g = window.ExekraStudio.autoLayout("
            "m.graphFromDefinition(d)); return m.definitionFromGraph(g); }",
            definition,
        )
        assert without_ui(back) == definition
        assert without_ui(laid_out) == definition
        assert list(laid_out)[: len(definition)] == list(definition)  # the fields keep their order
        assert set(laid_out["ui"]["positions"]) == {n["id"] for n in definition["nodes"]}
        checked.append(1)

    round_trip()
    assert len(checked) >= 100


# --- the whole journey -------------------------------------------------------------------------------------------


def test_a_new_user_builds_fixes_publishes_runs_schedules_and_audits_a_workflow(
    studio: Any,
    admin_api: httpx.Client,
    browser_hub: HubProcess,
    start_runner: Callable[..., RunnerProcess],
) -> None:
    page = studio
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    start_registered_runner(admin_api, start_runner, "studio")
    name = f"studio-{secrets.token_hex(3)}"

    # A credential, added in the browser.
    page.goto("/credentials")
    page.fill("#create-credential input[name=name]", "chat")
    page.fill("input[name=field-name-0]", "token")
    page.fill("input[name=field-value-0]", "tok-3f9a-secret")
    page.click("#create-credential button[type=submit]")
    page.wait_for_selector("text=Credential chat saved.")
    screenshot(page, "studio-credentials")

    # A new workflow from the form (its starter definition is kept as it is: no JSON typed).
    page.goto("/workflows/new")
    page.fill("input[name=name]", name)
    page.click("button[type=submit]:has-text('Create')")
    page.wait_for_url(re.compile(r"/workflows/[0-9a-f-]{36}$"))
    workflow_id = page.url.rsplit("/", 1)[1]
    page.click("a:has-text('Design')")
    page.wait_for_selector(".sx-palette-item")

    # Five nodes with a branch, on the canvas.
    add_after(page, "hello", "control.if")
    rename_selected(page, "check")
    set_param(page, "condition", "{{ inputs.name == 'world' }}")
    add_after(page, "check", "log.message")
    rename_selected(page, "greet")
    page.click(".sx-field[data-param='message'] .sx-scope button")
    page.click(".sx-scope-item:has-text('credentials.chat.token')")
    add_after(page, "check", "log.message")
    rename_selected(page, "other")
    set_param(page, "message", "not the world")
    page.locator(".sx-option:has-text('Retries') input").fill("20")
    page.locator(".sx-option:has-text('Retries') input").blur()
    # The fifth node is dropped from the palette onto the canvas and connected by dragging.
    canvas = page.locator(".sx-canvas").bounding_box()
    page.fill("#sx-palette-search", "log.message")
    page.locator(".sx-palette-item:has-text('log.message')").drag_to(
        page.locator(".react-flow__pane"), target_position={"x": 60, "y": canvas["height"] - 120}
    )
    page.fill("#sx-palette-search", "")
    wait_until(lambda: page.locator(".react-flow__node").count() == 5, 5, 0.05, "the dropped node")
    rename_selected(page, "done")
    set_param(page, "message", "done")
    page.click("button:has-text('Auto-layout')")
    page.wait_for_timeout(300)
    drag_between(
        page,
        node(page, "greet").locator(".react-flow__handle.source"),
        node(page, "done").locator(".react-flow__handle.target"),
    )
    wait_until(lambda: page.locator(".react-flow__edge").count() == 4, 5, 0.05, "the dragged edge")
    labels = [label.text_content() for label in page.locator(".react-flow__edge-text").all()]
    assert sorted(labels) == ["when: false", "when: true"]

    # The hub refuses the draft: the problem shows on the offending node.
    page.click("button:has-text('Save draft')")
    page.wait_for_selector(".sx-node-problem")
    assert node(page, "other").locator(".sx-node-problem").count() == 1
    assert "retries must be an integer from 0 to 10" in node(page, "other").inner_text()
    assert "Not saved: 1 problem" in page.inner_text(".sx-status")
    screenshot(page, "studio-validation-error")
    assert admin_api.get(f"/api/workflows/{workflow_id}").json()["workflow"]["latestVersion"] == 1

    # Fixed, then published in one click.
    node(page, "other").click()
    page.locator(".sx-option:has-text('Retries') input").fill("2")
    page.locator(".sx-option:has-text('Retries') input").blur()
    page.click("button:has-text('Save & publish')")
    page.wait_for_selector("text=Published version 2")
    assert page.locator(".sx-node-problem").count() == 0
    page.click("button:has-text('Auto-layout')")
    screenshot(page, "studio-canvas")
    definition = admin_api.get(f"/api/workflows/{workflow_id}/versions/2").json()["version"]["definition"]
    assert [n["id"] for n in definition["nodes"]] == ["hello", "check", "greet", "other", "done"]
    assert {(e["from"], e["to"], e.get("when")) for e in definition["edges"]} == {
        ("hello", "check", None),
        ("check", "greet", "true"),
        ("check", "other", "false"),
        ("greet", "done", None),
    }
    assert definition["nodes"][2]["params"]["message"] == "{{ credentials.chat.token }}"
    assert set(definition["ui"]["positions"]) == {"hello", "check", "greet", "other", "done"}

    # Compare version 1 and version 2 as graphs.
    page.click("#sx-tab-compare")
    page.click(".sx-compare button:has-text('Compare')")
    page.wait_for_selector(".sx-diff-added")
    assert page.locator(".sx-diff-added").count() == 4
    assert "4 added" in page.inner_text(".sx-legend")
    screenshot(page, "studio-compare")
    page.click("#sx-tab-json")
    screenshot(page, "studio-json")

    # Run it from the workflow page; it completes, and the credential never shows in the log.
    page.goto(f"/workflows/{workflow_id}")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/executions/[0-9a-f-]{36}$"))
    execution_id = page.url.rsplit("/", 1)[1]
    # The live graph reaches COMPLETED: every node on the taken branch completed, the other one skipped.
    page.wait_for_selector("#execution-status[data-status=COMPLETED]", timeout=60_000)
    page.wait_for_selector(".sx-run-completed[data-node-id=done]", timeout=10_000)
    states = {
        node_id: page.get_attribute(f".react-flow__node [data-node-id={node_id}]", "class")
        for node_id in ("hello", "check", "greet", "other", "done")
    }
    assert {node_id: re.findall(r"sx-run-(\w+)", classes or "") for node_id, classes in states.items()} == {
        "hello": ["completed"],
        "check": ["completed"],
        "greet": ["completed"],
        "other": ["skipped"],
        "done": ["completed"],
    }
    # Selecting a node shows only its lines.
    node(page, "greet").click()
    page.wait_for_selector("text=The log shows node greet only.")
    visible = page.eval_on_selector_all(".log-line", "ls => ls.filter(l => !l.hidden).map(l => l.dataset.node)")
    assert visible and set(visible) == {"greet"}
    screenshot(page, "execution-live-graph")
    page.click("button:has-text('Show every line')")
    assert page.eval_on_selector_all(".log-line", "ls => ls.filter(l => l.hidden).length") == 0
    lines = admin_api.get(f"/api/executions/{execution_id}/logs").json()["lines"]
    assert any("***" in line["message"] for line in lines)
    assert not any("tok-3f9a-secret" in line["message"] for line in lines)

    # A schedule, with its preview as it is typed, and a webhook, which is called.
    page.goto(f"/triggers?workflow={workflow_id}")
    page.fill("#create-trigger input[name=name]", "every-weekday")
    page.fill("#cron-input", "0 7 * * 1-5")
    page.fill("#tz-input", "Europe/Berlin")
    page.wait_for_selector("text=At 07:00, Monday through Friday")
    assert page.locator(".fire-times li").count() == 5
    screenshot(page, "triggers-new-schedule")
    page.click("#create-trigger button[type=submit]")
    page.wait_for_selector("text=Schedule every-weekday created.")
    screenshot(page, "trigger-detail")
    page.goto(f"/triggers?workflow={workflow_id}")
    page.click("#new-trigger > summary")  # folded once the list has a trigger
    page.fill("#create-trigger input[name=name]", "ticket-hook")
    page.check("input[name=type][value=WEBHOOK]")
    page.click("#create-trigger button[type=submit]")
    url = page.inner_text("#webhook-url").strip()
    screenshot(page, "trigger-webhook-url")
    fired = httpx.post(url, json={"id": 42}, timeout=10)
    assert fired.status_code == 202, fired.text
    wait_status(admin_api, fired.json()["executionId"], "COMPLETED", 60)
    page.goto(f"/triggers?workflow={workflow_id}")
    row = page.locator("tr[data-trigger='ticket-hook']")
    assert row.locator(f"a[href='/executions/{fired.json()['executionId']}']").count() == 1
    assert "At 07:00, Monday through Friday" in page.locator("tr[data-trigger='every-weekday']").inner_text()
    screenshot(page, "triggers")

    # The runs in the audit log.
    page.goto("/audit")
    page.fill("#audit-filters input[name=action]", "execution.create")
    page.fill("#audit-filters input[name=entityId]", execution_id)
    page.click("#audit-filters button[type=submit]")
    page.wait_for_selector(f"tr[data-entity='{execution_id}']")
    assert "execution.create" in page.inner_text(f"tr[data-entity='{execution_id}']")
    page.goto("/audit?action=execution.create")
    webhook_row = page.locator(f"tr[data-entity='{fired.json()['executionId']}']")
    assert "TRIGGER" in webhook_row.inner_text()
    screenshot(page, "audit")

    # The credential page now says who uses it.
    page.goto("/credentials")
    assert name in page.locator("tr[data-credential='chat']").inner_text()
    assert errors == []


# --- keyboard, accessibility and layout -----------------------------------------------------------------------


def test_the_canvas_can_be_built_with_the_keyboard_alone(blank_design: Any) -> None:
    page = blank_design
    page.focus("#sx-palette-search")
    page.keyboard.type("delay")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    wait_until(lambda: node(page, "delay").count() == 1, 5, 0.05, "the node added with the keyboard")
    assert page.locator(".react-flow__edge").count() == 1
    seconds = page.locator(".sx-field[data-param='seconds'] input")
    seconds.focus()
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    assert json_tab_definition(page)["nodes"][1]["params"] == {"seconds": 2}
    page.click("#sx-tab-canvas")
    node(page, "delay").focus()
    page.keyboard.press("Delete")
    wait_until(lambda: node(page, "delay").count() == 0, 5, 0.05, "the node deleted with the keyboard")
    page.keyboard.press("Control+z")
    wait_until(lambda: node(page, "delay").count() == 1, 5, 0.05, "undo")
    page.keyboard.press("Control+Shift+z")
    wait_until(lambda: node(page, "delay").count() == 0, 5, 0.05, "redo")


@pytest.fixture
def a_bit_of_everything(admin_api: httpx.Client) -> dict[str, str]:
    workflow_id = publish(admin_api, f"pages-{secrets.token_hex(3)}", STARTER, [])
    trigger = admin_api.post(
        "/api/triggers",
        json={"workflowId": workflow_id, "type": "SCHEDULE", "name": "t", "cronExpression": "0 1 * * *"},
    ).json()["trigger"]
    credential = admin_api.post("/api/credentials", json={"name": f"c{secrets.token_hex(2)}", "fields": {"a": "b"}})
    runner = register_runner(admin_api, ["pages"])["runner"]
    execution = admin_api.post("/api/executions", json={"workflowId": workflow_id}).json()["execution"]
    return {
        "execution": f"/executions/{execution['id']}",
        "design": f"/workflows/{workflow_id}/design",
        "triggers": "/triggers",
        "trigger": f"/triggers/{trigger['id']}",
        "credentials": "/credentials",
        "credential": f"/credentials/{credential.json()['credential']['id']}",
        "audit": "/audit",
        "account": "/account",
        "runner": f"/runners/{runner['id']}?hours=168",
    }


@pytest.mark.parametrize("width", [1280, 390])
def test_the_new_pages_pass_axe_and_fit_the_window(
    studio: Any, a_bit_of_everything: dict[str, str], width: int
) -> None:
    page = studio
    page.set_viewport_size({"width": width, "height": 900})
    problems: dict[str, Any] = {}
    for name, path in a_bit_of_everything.items():
        page.goto(path)
        if name == "design":
            page.wait_for_selector(".sx-palette-item")
        if name == "execution":
            page.wait_for_selector(".sx-run-not_reached")
        violations = axe_violations(page)
        overflow = horizontal_overflow(page)
        if violations or overflow:
            problems[name] = {"violations": violations, "overflow": overflow}
        if width == 390:
            screenshot(page, f"narrow-{name}")
        elif name in ("account", "credential", "runner"):
            screenshot(page, name)
    assert not problems, json.dumps(problems, indent=1)
