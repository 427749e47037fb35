"""Dashboard forms in process: runners, workflows (run, publish, edit), executions (live log, stop, retry), users."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from exekra.hub.context import Hub

from .conftest import PASSWORD, SIMPLE_DEFINITION, ClientFactory
from .protocol import ProtocolRunner, csrf_of, post_form, publish_workflow

TYPED_DEFINITION: dict[str, Any] = {
    **SIMPLE_DEFINITION,
    "inputs": {
        "who": {"type": "string", "required": True, "description": "whom to greet"},
        "times": {"type": "integer", "default": 2},
        "ratio": {"type": "number"},
        "loud": {"type": "boolean", "default": False},
        "options": {"type": "object"},
        "items": {"type": "array", "default": [1, 2]},
    },
}


async def follow(c: httpx.AsyncClient, r: httpx.Response) -> str:
    """The page a form's redirect leads to (with its flash message)."""
    assert r.status_code == 303, r.text[:500]
    return (await c.get(r.headers["location"])).text


# --- runners ----------------------------------------------------------------------------------------------


async def test_registering_a_runner_shows_its_secret_once_and_the_secret_signs_in(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    r = await post_form(
        admin, "/runners", {"name": "build-01", "type": "linux", "labels": "gpu, big,gpu"}, page="/runners"
    )
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"
    assert "shown only this once" in r.text
    key = re.search(r'id="machine-key">([^<]+)<', r.text)
    secret = re.search(r'id="machine-secret" class="secret">([^<]+)<', r.text)
    assert key and secret
    runner = (await admin.get("/api/runners")).json()["runners"][0]
    assert (runner["name"], runner["type"], runner["labels"]) == ("build-01", "linux", ["big", "gpu"])
    assert f"--machine-secret {secret.group(1)}" in r.text

    agent = ProtocolRunner(client, key.group(1), secret.group(1))
    assert (await agent.auth()).status_code == 200
    for path in (f"/runners/{runner['id']}", "/runners", f"/runners/{runner['id']}/live"):
        assert secret.group(1) not in (await admin.get(path)).text


async def test_a_refused_registration_is_explained_on_the_runners_page(admin: httpx.AsyncClient) -> None:
    await post_form(admin, "/runners", {"name": "taken"}, page="/runners")
    r = await post_form(admin, "/runners", {"name": "taken", "labels": "a"}, page="/runners")
    assert r.status_code == 422
    assert "A runner named taken already exists" in r.text
    assert 'value="taken"' in r.text and '<details class="card register" open>' in r.text
    r = await post_form(admin, "/runners", {"name": "  "}, page="/runners")
    assert r.status_code == 422 and "name: String should have at least 1 character" in r.text


async def test_regenerating_the_secret_shows_the_new_one_and_the_old_one_stops_working(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    agent = await ProtocolRunner.register(admin, client, "regen")
    r = await post_form(admin, f"/runners/{agent.runner_id}/regenerate-secret", {}, page=f"/runners/{agent.runner_id}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert "stopped working" in r.text
    secret = re.search(r'id="machine-secret" class="secret">([^<]+)<', r.text)
    assert secret and secret.group(1) != agent.machine_secret
    assert (await agent.auth()).status_code == 401
    agent.machine_secret = secret.group(1)
    assert (await agent.auth()).status_code == 200


async def test_editing_labels_and_disabling_and_enabling_a_runner(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    agent = await ProtocolRunner.register(admin, client, "editable", labels=["old"], type="linux")
    page = f"/runners/{agent.runner_id}"
    r = await post_form(admin, f"{page}/edit", {"name": "edited", "type": "", "labels": "new, other"}, page=page)
    assert "Runner saved." in await follow(admin, r)
    runner = (await admin.get(f"/api/runners/{agent.runner_id}")).json()["runner"]
    assert (runner["name"], runner["type"], runner["labels"]) == ("edited", None, ["new", "other"])

    r = await post_form(admin, f"{page}/disable", {}, page=page)
    assert "it gets no new work" in await follow(admin, r)
    assert (await admin.get(f"/api/runners/{agent.runner_id}")).json()["runner"]["enabled"] is False
    assert "badge-disabled" in (await admin.get("/runners")).text
    r = await post_form(admin, f"{page}/enable", {}, page=page)
    assert "offered work again" in await follow(admin, r)
    assert (await admin.get(f"/api/runners/{agent.runner_id}")).json()["runner"]["enabled"] is True


async def test_deleting_a_runner_and_the_reason_when_it_holds_an_execution(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "hold", SIMPLE_DEFINITION)
    busy = await ProtocolRunner.register(admin, client, "busy")
    await busy.auth()
    await admin.post("/api/executions", json={"workflowId": workflow_id})
    assert (await busy.poll(wait=5)).status_code == 200
    page = f"/runners/{busy.runner_id}"
    r = await post_form(admin, f"{page}/delete", {}, page=page)
    assert r.headers["location"] == page
    assert "The runner holds an execution" in await follow(admin, r)

    idle = await ProtocolRunner.register(admin, client, "idle")
    r = await post_form(admin, f"/runners/{idle.runner_id}/delete", {}, page="/runners")
    assert "Runner deleted." in await follow(admin, r)
    assert (await admin.get(f"/api/runners/{idle.runner_id}")).status_code == 404


async def test_the_runner_table_fragment_shows_fresh_metrics_and_status(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    agent = await ProtocolRunner.register(admin, client, "metrics")
    assert 'data-status="OFFLINE"' in (await admin.get("/runners/rows")).text
    await agent.auth()
    await agent.heartbeat(cpuPercent=42.0, memoryPercent=91.0, diskPercent=10.0, diskFreeGb=123.4)
    await hub.executions.liveness.flush()  # heartbeats are written within a second
    rows = (await admin.get("/runners/rows")).text
    assert rows.startswith('<tbody id="runner-rows" hx-get="/runners/rows')
    assert 'data-status="ONLINE"' in rows
    assert "42 %" in rows and "91 %" in rows and "123.4 GB free" in rows and "meter-fill hot" in rows
    live = (await admin.get(f"/runners/{agent.runner_id}/live")).text
    assert "42.0 %" in live and 'hx-trigger="every 5s"' in live
    assert 'data-chart="metrics-chart"' in (await admin.get(f"/runners/{agent.runner_id}")).text


# --- workflows --------------------------------------------------------------------------------------------


async def test_the_run_form_has_a_field_per_declared_input(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "typed", TYPED_DEFINITION)
    page = (await admin.get(f"/workflows/{workflow_id}")).text
    assert re.search(r'<input type="text" name="input.who" value="" required>', page)
    assert 'name="input.times" value="2" step="1"' in page
    assert 'name="input.ratio" value="" step="any"' in page
    assert re.search(r'<option value="false" selected>false</option>', page)
    assert 'name="input.options"' in page and "whom to greet" in page
    assert re.search(r'name="input.items"[^>]*>\[\n  1,\n  2\n\]</textarea>', page)


async def test_running_from_the_form_queues_a_manual_priority_9_execution_with_typed_inputs(
    admin: httpx.AsyncClient,
) -> None:
    workflow_id = await publish_workflow(admin, "typed", TYPED_DEFINITION, priority=3)
    form = {
        "input.who": "Ada",
        "input.times": "5",
        "input.ratio": "0.5",
        "input.loud": "true",
        "input.options": '{"a": {"b": null}}',
        "input.items": "",
    }
    r = await post_form(admin, f"/workflows/{workflow_id}/run", form, page=f"/workflows/{workflow_id}")
    assert r.status_code == 303
    execution_id = r.headers["location"].rsplit("/", 1)[1]
    execution = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]
    assert (execution["triggerType"], execution["priority"], execution["status"]) == ("MANUAL", 9, "QUEUED")
    assert execution["inputs"] == {
        "who": "Ada",
        "times": 5,
        "ratio": 0.5,
        "loud": True,
        "options": {"a": {"b": None}},
        "items": [1, 2],
    }
    assert "Execution queued." in (await admin.get(r.headers["location"])).text


async def test_run_form_problems_are_shown_in_place_with_what_was_typed(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "typed", TYPED_DEFINITION)
    page = f"/workflows/{workflow_id}"
    r = await post_form(admin, f"{page}/run", {"input.times": "many", "input.options": "{not json"}, page=page)
    assert r.status_code == 422
    assert "input &#39;times&#39;: must be a whole number" in r.text
    assert "input &#39;options&#39;: is not valid JSON" in r.text
    assert 'value="many"' in r.text
    r = await post_form(admin, f"{page}/run", {"input.times": "1"}, page=page)
    assert r.status_code == 422 and "input &#39;who&#39; is required" in r.text
    assert (await admin.get("/api/executions")).json()["total"] == 0


async def test_a_run_can_be_pinned_to_a_runner(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "pin", SIMPLE_DEFINITION, labels=["nowhere"])
    agent = await ProtocolRunner.register(admin, client, "pinned")
    r = await post_form(admin, f"/workflows/{workflow_id}/run", {"runner": str(agent.runner_id)}, page="/workflows")
    execution = (await admin.get(f"/api/executions/{r.headers['location'].rsplit('/', 1)[1]}")).json()["execution"]
    assert execution["pinnedRunnerId"] == agent.runner_id


async def test_a_workflow_without_a_published_version_cannot_run(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/api/workflows", json={"name": "draft", "definition": SIMPLE_DEFINITION})
    workflow_id = r.json()["workflow"]["id"]
    page = await admin.get(f"/workflows/{workflow_id}")
    assert "Nothing published yet" in page.text and "Publish v1" in page.text
    r = await admin.post(f"/workflows/{workflow_id}/run", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 409 and "has no published version" in r.text


async def test_editing_saves_a_draft_which_publishing_promotes(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "editable", SIMPLE_DEFINITION)
    page = f"/workflows/{workflow_id}"
    editor = (await admin.get(f"{page}/edit")).text
    assert "Save as version 2" in editor and "&#34;activity&#34;: &#34;log.message&#34;" in editor

    changed = {**SIMPLE_DEFINITION, "outputs": {"done": "yes"}}
    r = await post_form(admin, f"{page}/edit", {"definition": orjson.dumps(changed).decode()}, page=page)
    assert r.headers["location"] == f"{page}?version=2"
    assert "Saved version 2 as a draft" in await follow(admin, r)
    detail = (await admin.get(page)).text
    assert "Publish v2" in detail

    r = await post_form(admin, f"{page}/publish", {}, page=page)
    assert "Latest version published." in await follow(admin, r)
    workflow = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert (workflow["publishedVersion"], workflow["latestVersion"]) == (2, 2)
    r = await post_form(admin, f"{page}/publish", {}, page=page)
    assert "has no draft to publish" in await follow(admin, r)

    # Roll back from the versions table: version 1 again, then forward to 2 with the button at the top.
    detail = (await admin.get(page)).text
    assert "Roll back to v1" in detail
    r = await post_form(admin, f"{page}/publish", {"version": "1"}, page=page)
    assert "Version 1 published." in await follow(admin, r)
    detail = (await admin.get(page)).text
    assert "Publish v2" in detail  # the superseded latest version, from the top and from its row
    r = await post_form(admin, f"{page}/publish", {"version": "2"}, page=page)
    assert "Version 2 published." in await follow(admin, r)
    workflow = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert (workflow["publishedVersion"], workflow["latestVersion"]) == (2, 2)


async def test_editor_problems_are_shown_in_place_and_nothing_is_saved(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "strict", SIMPLE_DEFINITION)
    page = f"/workflows/{workflow_id}"
    cases = {
        '{"nodes": [}': "Not valid JSON: line 1, column 12",
        "[1, 2]": "The definition must be a JSON object",
        '{"nodes": [{"id": "a", "activity": "nope"}], "edges": [{"from": "a", "to": "a"}]}': "unknown activity",
    }
    for text, problem in cases.items():
        r = await post_form(admin, f"{page}/edit", {"definition": text}, page=page)
        assert r.status_code == 422, text
        assert problem in r.text, text
        assert 'class="problems" role="alert"' in r.text
        assert "&#39;message&#39;" not in r.text  # each problem's message, not the located problem's repr
    assert (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["latestVersion"] == 1


async def test_creating_a_workflow_from_the_form(admin: httpx.AsyncClient) -> None:
    r = await post_form(
        admin,
        "/workflows/new",
        {"name": "fresh", "description": "made in the browser", "definition": orjson.dumps(SIMPLE_DEFINITION).decode()},
        page="/workflows/new",
    )
    assert "draft version 1" in await follow(admin, r)
    r = await post_form(admin, "/workflows/new", {"name": "fresh", "definition": "{}"}, page="/workflows/new")
    assert r.status_code == 422 and 'value="fresh"' in r.text
    r = await post_form(
        admin, "/workflows/new", {"name": "fresh", "definition": orjson.dumps(SIMPLE_DEFINITION).decode()}, page="/"
    )
    assert r.status_code == 409 and "already exists" in r.text


# --- executions -------------------------------------------------------------------------------------------


async def test_the_executions_list_filters_and_pages_by_cursor(admin: httpx.AsyncClient) -> None:
    first = await publish_workflow(admin, "first", SIMPLE_DEFINITION, labels=["nowhere"])
    second = await publish_workflow(admin, "second", SIMPLE_DEFINITION, labels=["nowhere"])
    for i in range(55):
        await admin.post("/api/executions", json={"workflowId": first if i % 5 else second})
    page1 = (await admin.get("/executions")).text
    assert page1.count("<tr data-execution=") == 50 and '<span class="count">55</span>' in page1
    cursor = re.search(r'href="/executions\?cursor=([^"]+)" rel="next">Older', page1)
    assert cursor
    page2 = (await admin.get(f"/executions?cursor={cursor.group(1)}")).text
    assert page2.count("<tr data-execution=") == 5 and "Older →" not in page2 and "Newest" in page2
    assert 'class="count"' not in page2  # keyset pages are not counted
    ids = set(re.findall(r'data-execution="([^"]+)"', page1 + page2))
    assert len(ids) == 55

    filtered = (await admin.get(f"/executions?workflow={second}&status=queued")).text
    assert filtered.count("<tr data-execution=") == 11
    assert f'<option value="{second}" selected>second</option>' in filtered
    assert "No execution matches" in (await admin.get("/executions?status=COMPLETED")).text
    future = (await admin.get("/executions?since=2999-01-01T00:00")).text
    assert "No execution matches" in future


async def test_execution_counts_show_a_plus_past_the_count_cap(
    admin: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.settings, "executions_total_cap", 3)
    workflow_id = await publish_workflow(admin, "counted", SIMPLE_DEFINITION, labels=["nowhere"])
    created = [(await admin.post("/api/executions", json={"workflowId": workflow_id})).json() for _ in range(4)]
    await admin.post(f"/api/executions/{created[0]['execution']['id']}/stop")
    assert '<span class="count">3+</span>' in (await admin.get("/executions")).text
    assert '<span class="count">1</span>' in (await admin.get("/executions?status=STOPPED")).text
    assert "Recent executions <small>3+</small>" in (await admin.get(f"/workflows/{workflow_id}")).text


async def test_the_execution_page_tails_the_log_and_stops_polling_at_the_end(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "tail", SIMPLE_DEFINITION)
    agent = await ProtocolRunner.register(admin, client, "tailer")
    await agent.auth()
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    attempt = (await agent.poll(wait=5)).json()["execution"]["attempt"]
    await agent.start(execution_id, attempt)
    await agent.logs(execution_id, attempt, "one", "<two>")

    page = (await admin.get(f"/executions/{execution_id}")).text
    assert page.count('class="log-line') == 2 and "&lt;two&gt;" in page
    assert 'data-status="RUNNING"' in page
    poll = re.search(r'hx-get="(/executions/[^"]+/live\?after=2&amp;state=([^"]+))"', page)
    assert poll
    state = poll.group(2)

    await agent.logs(execution_id, attempt, "three")
    live = (await admin.get(f"/executions/{execution_id}/live?after=2&state={state}")).text
    assert live.count('class="log-line') == 1 and "three" in live
    assert 'hx-swap-oob="beforeend:#log-lines"' in live
    assert 'id="execution-status"' not in live  # unchanged: not re-rendered
    assert "after=3&amp;state=" in live

    await agent.complete(
        execution_id, attempt, metrics={"cpuAvg": 12.5, "cpuPeak": 50.0, "memAvgMb": 10.0, "memPeakMb": 20.0}
    )
    live = (await admin.get(f"/executions/{execution_id}/live?after=3&state={state}")).text
    assert 'data-polling="no"' in live and "hx-get" not in live.split('id="execution-status"')[0]
    assert 'hx-swap-oob="true" data-status="COMPLETED"' in live
    page = (await admin.get(f"/executions/{execution_id}")).text
    assert "12.5 %" in page and "50.0 %" in page and "20.0 MB" in page and "end-completed" in page
    assert 'data-polling="no"' in page and '<meta http-equiv="refresh"' not in page


async def test_a_long_log_loads_in_pages_at_once_and_the_graph_states_ride_with_the_poll(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "long-log", SIMPLE_DEFINITION)
    agent = await ProtocolRunner.register(admin, client, "long-logger")
    await agent.auth()
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    attempt = (await agent.poll(wait=5)).json()["execution"]["attempt"]
    await agent.start(execution_id, attempt)
    started = {"level": "INFO", "message": "node hello (log.message) started", "node": "hello", "event": "started"}
    body = {"attempt": attempt, "lines": [started] + [{"message": f"line {i}", "node": "hello"} for i in range(999)]}
    sent = await client.post(f"/api/runner/executions/{execution_id}/logs", json=body, headers=agent.headers)
    assert sent.status_code == 200
    await agent.logs(execution_id, attempt, *[f"more {i}" for i in range(1000)])  # 2,001 lines in all
    done = {"level": "INFO", "message": "node hello (log.message) completed", "node": "hello", "event": "completed"}
    assert (await agent.complete(execution_id, attempt, lines=[done])).status_code == 200

    page = (await admin.get(f"/executions/{execution_id}")).text
    assert page.count('class="log-line') == 500  # the first page of lines; the poll goes at once for the rest
    assert 'hx-trigger="load"' in page and "after=500&amp;" in page
    assert '<div class="log-line log-info" data-seq="1" data-node="hello" data-event="started">' in page
    assert '"state":"COMPLETED"' in page.split('id="run-graph-states"')[1].split(">")[0]
    first = (await admin.get(f"/executions/{execution_id}/live?after=500&state=old")).text
    assert first.count('class="log-line') == 1000 and 'hx-trigger="load"' in first and "after=1500&amp;" in first
    assert 'id="run-graph-states" hidden hx-swap-oob="true"' in first  # the state changed since "old"
    last = (await admin.get(f"/executions/{execution_id}/live?after=1500&state=old")).text
    assert last.count('class="log-line') == 501 and 'data-polling="no"' in last


async def test_stop_and_retry_from_the_execution_page(admin: httpx.AsyncClient, make_client: ClientFactory) -> None:
    operator = await make_client("OPERATOR")
    workflow_id = await publish_workflow(admin, "stoppable", SIMPLE_DEFINITION, labels=["nowhere"])
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id, "inputs": {"k": 1}})).json()[
        "execution"
    ]["id"]
    page = f"/executions/{execution_id}"
    r = await post_form(operator, f"{page}/stop", {}, page=page)
    assert "Execution stopped." in await follow(operator, r)
    assert (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]["status"] == "STOPPED"
    r = await post_form(operator, f"{page}/stop", {}, page=page)
    assert "cannot be stopped" in await follow(operator, r)

    r = await post_form(operator, f"{page}/retry", {}, page=page)
    retried_id = r.headers["location"].rsplit("/", 1)[1]
    assert retried_id != execution_id
    retried = (await admin.get(f"/api/executions/{retried_id}")).json()["execution"]
    assert (retried["triggerType"], retried["inputs"], retried["status"]) == ("MANUAL", {"k": 1}, "QUEUED")


async def test_stopping_a_running_execution_asks_its_runner(
    admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "running", SIMPLE_DEFINITION)
    agent = await ProtocolRunner.register(admin, client, "worker")
    await agent.auth()
    execution_id = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    attempt = (await agent.poll(wait=5)).json()["execution"]["attempt"]
    await agent.start(execution_id, attempt)
    page = f"/executions/{execution_id}"
    r = await post_form(admin, f"{page}/stop", {}, page=page)
    text = await follow(admin, r)
    assert "Stop requested" in text and "stop requested</span>" in text
    assert (await agent.logs(execution_id, attempt)).json()["stopRequested"] is True


# --- users ------------------------------------------------------------------------------------------------


async def test_users_are_created_given_roles_disabled_and_enabled(admin: httpx.AsyncClient) -> None:
    r = await post_form(
        admin,
        "/users",
        {"email": "op@example.com", "name": "Op", "password": PASSWORD, "role": "OPERATOR"},
        page="/users",
    )
    assert "User op@example.com created as OPERATOR." in await follow(admin, r)
    user = next(u for u in (await admin.get("/api/users")).json()["users"] if u["email"] == "op@example.com")

    r = await post_form(admin, f"/users/{user['id']}/role", {"role": "DEVELOPER"}, page="/users")
    assert "Role changed to DEVELOPER." in await follow(admin, r)
    r = await post_form(admin, f"/users/{user['id']}/disable", {}, page="/users")
    assert "User disabled" in await follow(admin, r)
    r = await post_form(admin, f"/users/{user['id']}/enable", {}, page="/users")
    assert "User enabled." in await follow(admin, r)
    user = next(u for u in (await admin.get("/api/users")).json()["users"] if u["email"] == "op@example.com")
    assert (user["role"], user["disabled"]) == ("DEVELOPER", False)
    assert "op@example.com" in (await admin.get("/users?search=op@")).text


async def test_user_form_problems_are_reported(admin: httpx.AsyncClient) -> None:
    me = (await admin.get("/api/auth/me")).json()["user"]
    r = await post_form(admin, f"/users/{me['id']}/role", {"role": "OPERATOR"}, page="/users")
    assert "last active admin" in await follow(admin, r)
    r = await post_form(admin, f"/users/{me['id']}/role", {"role": "KING"}, page="/users")
    assert "role: Input should be" in await follow(admin, r)
    r = await post_form(admin, "/users", {"email": "x@example.com", "password": "short"}, page="/users")
    assert "password: String should have at least 8 characters" in await follow(admin, r)
    r = await post_form(admin, "/users", {"email": me["email"], "password": PASSWORD}, page="/users")
    assert "already exists" in await follow(admin, r)


# --- retries -----------------------------------------------------------------------------------------------


async def test_the_retry_policy_is_shown_set_refused_and_cleared_on_the_workflow_page(admin: httpx.AsyncClient) -> None:
    workflow_id = await publish_workflow(admin, "flaky", SIMPLE_DEFINITION)
    page = f"/workflows/{workflow_id}"
    assert 'id="retry-form"' in (await admin.get(page)).text
    form: dict[str, Any] = {"attempts": "3", "backoffSeconds": "30", "backoffFactor": "2", "on": ["FAILED", "TIMEOUT"]}
    r = await post_form(admin, f"{page}/retry", form, page=page)
    shown = await follow(admin, r)
    assert "Retry policy saved." in shown and "3 time(s) on FAILED, TIMEOUT, after 30.0 s" in shown
    workflow = (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]
    assert workflow["retry"] == {"attempts": 3, "backoffSeconds": 30, "backoffFactor": 2, "on": ["FAILED", "TIMEOUT"]}

    r = await post_form(admin, f"{page}/retry", {**form, "attempts": "11"}, page=page)
    assert "attempts" in await follow(admin, r)
    r = await post_form(admin, f"{page}/retry", {**form, "on": []}, page=page)
    assert "on" in await follow(admin, r)
    assert (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["retry"]["attempts"] == 3

    r = await post_form(admin, f"{page}/retry", {"attempts": ""}, page=page)
    assert "Automatic retries turned off." in await follow(admin, r)
    assert (await admin.get(f"/api/workflows/{workflow_id}")).json()["workflow"]["retry"] is None


async def test_an_execution_page_links_the_retry_and_the_execution_it_retries(
    hub: Hub, admin: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "flaky", SIMPLE_DEFINITION, retry={"attempts": 1, "on": ["FAILED"]})
    runner = await ProtocolRunner.online(admin, client, "r")
    failed = (await admin.post("/api/executions", json={"workflowId": workflow_id})).json()["execution"]["id"]
    work = await runner.take(failed)
    assert (await runner.start(failed, work["attempt"])).status_code == 200
    assert (await runner.complete(failed, work["attempt"], "FAILED", error="boom")).status_code == 200
    await hub.executions.retry_due()  # (or the hub's own maintenance pass did it a moment before)
    [retry] = (await admin.get("/api/executions", params={"retryOf": failed})).json()["executions"]

    original_page = (await admin.get(f"/executions/{failed}")).text
    assert "retried as" in original_page and f'href="/executions/{retry["id"]}"' in original_page
    retry_page = (await admin.get(f"/executions/{retry['id']}")).text
    assert "retry 1 of" in retry_page and f'href="/executions/{failed}"' in retry_page
