"""Matching requires that the runner declares every activity the execution needs beyond what every runner has,
on every claim path: a runner's poll and a new execution's match, in Redis mode and in direct mode."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..protocol import ProtocolRunner, create_execution, declaration, publish_workflow
from .conftest import RunningHub, empty_tables, hub_settings, running_hub

BROWSER = {"nodes": [{"id": "open", "activity": "browser.open", "params": {"url": "http://127.0.0.1/"}}]}
PLAIN = {"nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "hello"}}]}


@pytest.fixture(params=["redis", "direct"])
async def any_mode(
    request: pytest.FixtureRequest, queue_database_url: str, tmp_path: Path
) -> AsyncIterator[RunningHub]:
    """A hub in Redis mode, then in direct mode, on an emptied database."""
    await empty_tables(queue_database_url)
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    async with running_hub(hub_settings(queue_database_url, tmp_path, redis_url)) as running:
        assert await running.queue_mode() == request.param
        yield running


async def online(hub: RunningHub, catalogue: dict[str, object] | None = None) -> ProtocolRunner:
    runner = await ProtocolRunner.register(hub.admin, hub.http, f"r-{secrets.token_hex(4)}")
    assert (await runner.auth(catalogue)).status_code == 200
    assert (await runner.heartbeat()).status_code == 200
    return runner


async def finish(runner: ProtocolRunner, execution_id: str) -> None:
    work = await runner.take(execution_id)
    assert (await runner.start(execution_id, work["attempt"])).status_code == 200
    assert (await runner.complete(execution_id, work["attempt"])).status_code == 200


async def test_two_runners_of_different_catalogues_each_get_only_what_they_can_run(any_mode: RunningHub) -> None:
    hub = any_mode
    browsing = await publish_workflow(hub.admin, "browsing", BROWSER)
    simple = await publish_workflow(hub.admin, "simple", PLAIN)

    # Poll path: both wait while no runner is online (with both runners idle, the two creates' matches run beside
    # their requests in either order, and the plain one could leave the chromium runner nothing it can run). The
    # urgent browser execution is then skipped by the runner that cannot run it, and waits for the one that can.
    urgent = await create_execution(hub.admin, browsing, priority=9)
    ordinary = await create_execution(hub.admin, simple, priority=1)
    plain = await online(hub)  # an older runner: the built-ins that need no capability
    await finish(plain, ordinary["id"])
    chromium = await online(hub, declaration("browser.open", capabilities=("browser",)))
    await finish(chromium, urgent["id"])

    # Create path: the plain runner signed in last (most recent heartbeat), yet the browser work goes past it.
    assert (await plain.heartbeat()).status_code == 200
    second = await create_execution(hub.admin, browsing)
    assert (await plain.poll()).status_code == 204
    await finish(chromium, second["id"])
    assert (await hub.execution(second["id"]))["runnerId"] == chromium.runner_id


async def test_work_nobody_can_run_waits_with_its_reason_and_goes_to_the_first_runner_that_declares_it(
    any_mode: RunningHub,
) -> None:
    hub = any_mode
    plain = await online(hub)
    created = await create_execution(hub.admin, await publish_workflow(hub.admin, "browsing", BROWSER))
    assert (await plain.poll()).status_code == 204
    waiting = await hub.execution(created["id"])
    assert (waiting["status"], waiting["waitingReason"]) == ("QUEUED", "no runner declares browser.open")
    chromium = await online(hub, declaration("browser.open", capabilities=("browser",)))
    await finish(chromium, created["id"])
    assert (await plain.poll()).status_code == 204
