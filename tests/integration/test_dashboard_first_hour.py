"""Dashboard details a new user stumbled on (issue 13): names instead of ids, the run form's undeclared inputs,
one vocabulary for version states, the definition in its author's order, the execution page's actions."""

from __future__ import annotations

import httpx

from .conftest import SIMPLE_DEFINITION
from .protocol import ProtocolRunner, publish_workflow
from .test_dashboard import post_form


def _section(page: str, heading: str) -> str:
    """The HTML from a card's heading to the next card."""
    start = page.index(heading)
    end = page.find('<section class="card', start)
    return page[start : end if end != -1 else len(page)]


async def test_the_workflow_page_names_the_runner_of_each_recent_execution(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "named-runs", SIMPLE_DEFINITION)
    runner = await ProtocolRunner.register(admin, client, "build-07")
    await runner.auth()
    await runner.heartbeat()
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    attempt = (await runner.poll(wait=5)).json()["execution"]["attempt"]
    await runner.start(execution_id, attempt)
    recent = _section((await admin.get(f"/workflows/{workflow_id}")).text, "Recent executions")
    assert f'<a href="/runners/{runner.runner_id}">build-07</a>' in recent


async def test_the_run_form_refuses_inputs_the_published_version_does_not_declare(admin: httpx.AsyncClient) -> None:
    """A form loaded before the workflow changed sends inputs the published version no longer has."""
    definition = {**SIMPLE_DEFINITION, "inputs": {"label": {"type": "string", "default": "x"}}}
    workflow_id = await publish_workflow(admin, "renamed-input", definition)
    page = f"/workflows/{workflow_id}"
    r = await post_form(admin, f"{page}/run", {"input.lable": "typo", "input.label": "ok"}, page=page)
    assert r.status_code == 422
    assert "version 1 does not declare the input &#39;lable&#39;" in r.text
    assert (await admin.get("/api/executions")).json()["total"] == 0
    r = await post_form(admin, f"{page}/run", {"input.label": "ok"}, page=page)
    assert r.status_code == 303


async def test_version_states_read_as_the_api_says_them(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "states", SIMPLE_DEFINITION)
    r = await admin.post(f"/api/workflows/{workflow_id}/versions", json={"definition": SIMPLE_DEFINITION})
    assert r.status_code == 201
    await admin.post(f"/api/workflows/{workflow_id}/publish")
    page = (await admin.get(f"/workflows/{workflow_id}?version=1")).text
    versions = _section(page, "<h2>Versions</h2>")
    assert 'badge-superseded">superseded</span>' in versions and 'badge-published">published</span>' in versions
    assert "was published" not in page
    assert "version 1 · superseded" in _section(page, "<h2>Definition")


async def test_a_running_execution_offers_stop_and_a_finished_one_retry(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "actions", SIMPLE_DEFINITION)
    runner = await ProtocolRunner.register(admin, client, "worker")
    await runner.auth()
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    attempt = (await runner.poll(wait=5)).json()["execution"]["attempt"]
    await runner.start(execution_id, attempt)
    running = _section((await admin.get(f"/executions/{execution_id}")).text, 'id="execution-status"')
    assert f'action="/executions/{execution_id}/stop"' in running
    assert f'action="/executions/{execution_id}/retry"' not in running
    await runner.complete(execution_id, attempt)
    ended = _section((await admin.get(f"/executions/{execution_id}")).text, 'id="execution-status"')
    assert f'action="/executions/{execution_id}/retry"' in ended
    assert f'action="/executions/{execution_id}/stop"' not in ended


AUTHOR_ORDER = {
    "nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "hi", "level": "INFO"}}],
    "outputs": {"zeta": "last", "alpha": "first"},
    "edges": [],
    "inputs": {"who": {"type": "string", "default": "you"}},
}


def _key_positions(text: str, *keys: str) -> list[int]:
    return [text.index(f"&#34;{key}&#34;") for key in keys]


async def test_the_stored_definition_keeps_its_author_s_key_order(admin: httpx.AsyncClient) -> None:
    """PostgreSQL's JSONB reorders keys (shortest first); the definition is shown as written (item 14)."""
    workflow_id = await publish_workflow(admin, "ordered", AUTHOR_ORDER)
    version = (await admin.get(f"/api/workflows/{workflow_id}/versions/1")).json()["version"]
    assert list(version["definition"]) == ["nodes", "outputs", "edges", "inputs"]
    assert list(version["definition"]["nodes"][0]) == ["id", "activity", "params"]
    assert list(version["definition"]["outputs"]) == ["zeta", "alpha"]

    shown = _section((await admin.get(f"/workflows/{workflow_id}")).text, 'id="definition"')
    positions = _key_positions(
        shown, "nodes", "id", "activity", "params", "outputs", "zeta", "alpha", "edges", "inputs"
    )
    assert positions == sorted(positions)
    editor = (await admin.get(f"/workflows/{workflow_id}/edit")).text
    positions = _key_positions(editor, "nodes", "outputs", "edges", "inputs")
    assert positions == sorted(positions)
