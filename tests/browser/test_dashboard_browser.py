"""The dashboard in real headless Chromium against a real hub, real runners and a real Redis.

The tests run in file order: the first one meets the hub before any user exists (first-run page).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from exekra.embedded import EmbeddedRedis
from tests.e2e.conftest import PASSWORD, HubProcess, RunnerProcess, wait_until

from .conftest import (
    ADMIN_EMAIL,
    open_page,
    publish,
    screenshot,
    shown,
    sign_in,
    start_registered_runner,
    wait_for_health,
)

pytestmark = pytest.mark.browser

COUNTING_DEFINITION: dict[str, Any] = {
    "inputs": {"count": {"type": "integer", "default": 3, "description": "how many lines to print"}},
    "nodes": [
        {
            "id": "count",
            "activity": "shell.run",
            "params": {
                "command": "for i in $(seq 1 {{ inputs.count }}); do echo line $i; sleep 0.5; done",
                "shell": True,
            },
        }
    ],
    "edges": [],
}
SLEEPING_DEFINITION: dict[str, Any] = {
    "nodes": [{"id": "wait", "activity": "shell.run", "params": {"command": "echo started; sleep 60", "shell": True}}],
    "edges": [],
}


def js_errors(page: Any) -> list[str]:
    """Script errors of the page from now on (form answers such as 401 or 422 are expected, not errors)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors


@pytest.fixture
def first_run_page(chromium: Any, fresh_hub: HubProcess) -> Iterator[Any]:
    """A tab on a hub of this test's own, which has no user yet."""
    with open_page(chromium, fresh_hub.url) as tab:
        yield tab


def test_first_run_bootstrap_creates_the_admin_then_sign_out_and_sign_in(
    first_run_page: Any, fresh_hub: HubProcess
) -> None:
    page = first_run_page
    errors = js_errors(page)
    page.goto("/")
    assert page.url.endswith("/bootstrap")
    shown(page, "text=This hub has no users yet")
    screenshot(page, "01-bootstrap")
    page.fill("input[name=name]", "Ada Admin")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("button:has-text('Create administrator')")
    page.wait_for_url(f"{fresh_hub.url}/")
    shown(page, "text=You are the administrator")
    shown(page, "nav.mainnav >> text=Users")
    screenshot(page, "02-overview-first-run")

    page.click("button:has-text('Sign out')")
    page.wait_for_url(re.compile(r"/login"))
    shown(page, "text=Signed out.")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]:has-text('Sign in')")
    shown(page, "text=Wrong email or password")
    screenshot(page, "03-sign-in-error")
    sign_in(page, ADMIN_EMAIL, PASSWORD)
    shown(page, "h1:has-text('Overview')")
    assert errors == []


def test_register_a_runner_shows_its_secret_once_and_the_table_shows_it_online_live(
    signed_in: Any, admin_api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    page = signed_in
    errors = js_errors(page)
    name = f"browser-{secrets.token_hex(3)}"
    page.goto("/runners")
    page.click("summary:has-text('Register a runner')")
    page.fill("input[name=name]", name)
    page.fill("input[name=labels]", "browser, linux")
    page.click("button:has-text('Register')")
    shown(page, f"h1:has-text('Runner {name} registered')")
    shown(page, "text=it is shown only this once")
    machine_key = page.inner_text("#machine-key").strip()
    secret = page.inner_text("#machine-secret").strip()
    assert secret.startswith("rs_")
    page.click("button[data-copy=machine-secret]")
    page.wait_for_selector("button[data-copy=machine-secret][data-copied=true]")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    screenshot(page, "04-runner-secret-once")

    page.click("text=I have saved it")
    page.wait_for_url(re.compile(r"/runners/[0-9a-f-]{36}$"))
    runner_id = page.url.rsplit("/", 1)[1]
    assert secret not in page.content()  # never shown again

    page.goto("/runners")
    row = f'tr[data-runner="{name}"]'
    assert page.get_attribute(row, "data-status") == "OFFLINE"
    start_runner(name, runner_id, machine_key, secret)
    # The table refreshes itself (htmx): no reload here.
    page.wait_for_selector(f'{row}[data-status="ONLINE"]', timeout=25_000)
    page.wait_for_function(
        f"""() => !document.querySelector('{row} td[data-metric=cpu]').textContent.includes('\\u2013')""",
        timeout=10_000,
    )
    screenshot(page, "05-runners-live")

    wait_until(
        lambda: len(admin_api.get(f"/api/runners/{runner_id}/metrics").json()["metrics"]) >= 3, 20, 0.5, "heartbeats"
    )
    page.goto(f"/runners/{runner_id}")
    page.wait_for_selector("canvas[data-chart=metrics-chart]")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart=metrics-chart]'))"
    )
    shown(page, "button:has-text('Regenerate secret')")
    screenshot(page, "06-runner-detail")
    assert errors == []


def test_run_a_workflow_from_its_page_and_watch_the_logs_arrive_live_until_completed(
    signed_in: Any, admin_api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    page = signed_in
    errors = js_errors(page)
    start_registered_runner(admin_api, start_runner, "logs")
    workflow_id = publish(admin_api, f"count-{secrets.token_hex(3)}", COUNTING_DEFINITION, ["logs"])

    page.goto(f"/workflows/{workflow_id}")
    screenshot(page, "07-workflow-detail")
    page.fill("input[name='input.count']", "8")
    page.click("button:has-text('Run version 1')")
    page.wait_for_url(re.compile(r"/executions/[0-9a-f-]{36}$"))
    execution_id = page.url.rsplit("/", 1)[1]

    page.wait_for_selector(".log-line:has-text('line 1')", timeout=20_000)
    shown_while_running = page.locator(".log-line:has-text('line ')").count()
    status_then = page.get_attribute("#execution-status", "data-status")
    assert status_then in ("ASSIGNED", "RUNNING"), status_then
    assert shown_while_running < 8  # the first lines came before the last ones were printed
    # The graph follows the log: the node is running, then completed, on the same page.
    page.wait_for_selector(".sx-run-running[data-node-id=count]", timeout=10_000)
    assert "running" in page.inner_text("[data-node-id=count] .sx-node-run")

    page.wait_for_selector("#execution-status[data-status=COMPLETED]", timeout=30_000)
    page.wait_for_selector(".sx-run-completed[data-node-id=count]", timeout=10_000)
    assert "No outputs." in page.inner_text("#execution-io")  # was "Outputs appear when it completes."
    assert re.fullmatch(r"completed · \d+\.\d+ s", page.inner_text("[data-node-id=count] .sx-node-run"))
    page.wait_for_selector(".log-line:has-text('line 8')")
    page.wait_for_selector("#log-poller[data-polling=no]", timeout=10_000)
    seqs = [int(s) for s in page.eval_on_selector_all(".log-line", "lines => lines.map(l => l.dataset.seq)")]
    assert seqs == sorted(set(seqs))  # each line once, in order
    messages = page.eval_on_selector_all(".log-msg", "lines => lines.map(l => l.textContent)")
    assert [m for m in messages if m.startswith("line ")] == [f"line {i}" for i in range(1, 9)]
    shown(page, ".timeline li.end-completed")
    screenshot(page, "08-execution-completed")

    execution = admin_api.get(f"/api/executions/{execution_id}").json()["execution"]
    assert (execution["triggerType"], execution["priority"], execution["inputs"]) == ("MANUAL", 9, {"count": 8})
    assert errors == []


def test_stop_a_running_execution_from_its_page(
    signed_in: Any, admin_api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    page = signed_in
    start_registered_runner(admin_api, start_runner, "stop")
    workflow_id = publish(admin_api, f"sleep-{secrets.token_hex(3)}", SLEEPING_DEFINITION, ["stop"])
    page.goto(f"/workflows/{workflow_id}")
    page.click("button:has-text('Run version 1')")
    page.wait_for_url(re.compile(r"/executions/[0-9a-f-]{36}$"))
    page.wait_for_selector(".log-line:has-text('started')", timeout=20_000)
    page.wait_for_selector("#execution-status[data-status=RUNNING]")

    page.click("#execution-status button:has-text('Stop')")  # the confirmation is accepted
    shown(page, "text=Stop requested")
    page.wait_for_selector("#execution-status[data-status=STOPPED]", timeout=20_000)
    shown(page, ".timeline li.end-stopped")
    screenshot(page, "09-execution-stopped")


def test_the_api_docs_render_under_their_content_security_policy(page: Any, browser_hub: HubProcess) -> None:
    """Swagger UI has a policy of its own (an inline start-up script); the `page` fixture fails on violations."""
    page.goto("/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Exekra Hub API" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".swagger-ui .opblock-tag")


def test_the_overview_shows_direct_queue_mode_while_redis_is_down(
    signed_in: Any, browser_hub: HubProcess, browser_redis: EmbeddedRedis
) -> None:
    page = signed_in
    wait_for_health(browser_hub, "queue", "redis", 20)
    page.goto("/")
    page.wait_for_selector("[data-queue-mode=redis]")
    browser_redis.stop()
    try:
        # The overview refreshes itself every 5 s: no reload.
        page.wait_for_selector("[data-queue-mode=direct]", timeout=20_000)
        shown(page, "text=Redis is not answering")
        screenshot(page, "10-overview-direct-mode")
    finally:
        browser_redis.start()
    page.wait_for_selector("[data-queue-mode=redis]", timeout=30_000)


def test_every_page_renders_without_script_errors(signed_in: Any, admin_api: httpx.Client) -> None:
    page = signed_in
    errors = js_errors(page)
    page.goto("/")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart]'))")
    screenshot(page, "11-overview")
    for path, name in (
        ("/workflows", "12-workflows"),
        ("/executions", "13-executions"),
        ("/executions?status=COMPLETED", "14-executions-filtered"),
        ("/users", "15-users"),
        ("/workflows/new", "16-workflow-new"),
    ):
        page.goto(path)
        assert page.locator("main h1").count() == 1, path
        screenshot(page, name)

    workflow_id = publish(admin_api, f"edit-{secrets.token_hex(3)}", COUNTING_DEFINITION, ["nowhere"])
    page.goto(f"/workflows/{workflow_id}/edit")
    page.fill(
        "textarea[name=definition]",
        '{"nodes": [{"id": "a", "activity": "no.such"}], "edges": [{"from": "a", "to": "b"}]}',
    )
    assert "Valid JSON" in page.inner_text("#definition-check")
    page.click("button:has-text('Save as version 2')")
    shown(page, ".problems")
    shown(page, ".problems >> text=no.such")
    screenshot(page, "17-editor-validation-errors")
    assert errors == []


LONG_OUTPUTS: dict[str, Any] = {
    "nodes": [{"id": "say", "activity": "log.message", "params": {"message": "done"}}],
    "outputs": {"token": "x" * 600, "sentence": "a long value " * 60, "path": "/very/" * 80 + "file.txt"},
}


def test_long_output_values_wrap_inside_their_panel(
    signed_in: Any, admin_api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    """Issue 13, item 14: long values were cut off at the panel's edge."""
    page = signed_in
    start_registered_runner(admin_api, start_runner, "long")
    workflow_id = publish(admin_api, f"long-{secrets.token_hex(3)}", LONG_OUTPUTS, ["long"])
    execution_id = admin_api.post("/api/executions", json={"workflowId": workflow_id}).json()["execution"]["id"]
    wait_until(
        lambda: admin_api.get(f"/api/executions/{execution_id}").json()["execution"]["status"] == "COMPLETED",
        30,
        0.2,
        "the execution to complete",
    )
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(f"/executions/{execution_id}")
    pre = page.locator("section.card:has(h2:text('Outputs')) pre")
    assert "x" * 600 in pre.text_content()
    overflow = pre.evaluate(
        """el => {
            const card = el.closest('section.card').getBoundingClientRect();
            const box = el.getBoundingClientRect();
            return {scroll: el.scrollWidth - el.clientWidth, beyondCard: box.right - card.right};
        }"""
    )
    assert overflow["scroll"] <= 1 and overflow["beyondCard"] <= 0, overflow
    screenshot(page, "10-long-outputs")
