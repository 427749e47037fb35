"""The agent against a fake hub: the protocol cycle, errors, stops, outages and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from exekra.runner import logstream
from exekra.runner.agent import REPORT_WAIT_SECONDS, RunnerAgent
from exekra.runner.config import RunnerConfig
from exekra.runner.executor import Executor

if TYPE_CHECKING:
    from conftest import FakeExecution, FakeHub, HubServer

MakeAgent = Callable[..., RunnerAgent]


@pytest.fixture
def make_agent(
    hub_server: HubServer, make_config: Callable[..., RunnerConfig], make_executor: Callable[..., Executor]
) -> MakeAgent:
    def make(**overrides: Any) -> RunnerAgent:
        config = make_config(hub_server.url, **overrides)
        return RunnerAgent(config, executor=make_executor(config), shutdown_grace_seconds=10)

    return make


@contextlib.asynccontextmanager
async def running(agent: RunnerAgent) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        agent.request_shutdown()
        await asyncio.wait_for(task, 15)


async def child_pid(hub: FakeHub, execution: FakeExecution) -> int:
    await hub.wait_until(lambda: "child pid" in execution.log_text())
    match = re.search(r"child pid (\d+)", execution.log_text())
    assert match
    return int(match.group(1))


def messages(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if fragment in r.getMessage()]


async def test_happy_path_auth_heartbeat_poll_start_credentials_logs_complete(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    hub.credentials["db"] = {"password": "pw-12345"}
    definition = {
        "steps": [{"log": "hello"}, {"log": "pw is pw-12345"}],
        "outputs": {"p": "{{ credentials.db.password }}"},
    }
    execution = hub.enqueue(definition=definition, inputs={"x": 1})
    async with running(make_agent()):
        await hub.wait_until(lambda: execution.status == "COMPLETED")
        await hub.wait_until(lambda: len(hub.heartbeats) >= 1)
    assert execution.result is not None
    assert execution.result["outputs"] == {"echo": {"x": 1}, "attempt": 1}
    assert set(execution.result["metrics"]) == {"cpuAvg", "cpuPeak", "memAvgMb", "memPeakMb"}
    assert "hello" in execution.log_text() and "pw is ***" in execution.log_text()
    order = [name for name in hub.sequence if name in ("auth", "start", "credential", "logs", "complete")]
    # The lines went with `logs` or, the last of them, with `complete` (the hub takes them there).
    assert order[:3] == ["auth", "start", "credential"] and order[-1] == "complete"
    assert hub.calls["start"] == hub.calls["complete"] == 1
    assert set(hub.heartbeats[0]) >= {"cpuPercent", "memoryPercent", "memoryUsedMb", "diskPercent", "diskFreeGb"}


async def test_the_final_report_carries_the_last_log_lines_so_a_short_execution_sends_no_logs_call(
    hub: FakeHub, make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short: no line waits out its linger time and no keep-alive falls due while it runs.
    monkeypatch.setattr(logstream, "LINGER_SECONDS", 60.0)
    hub.intervals = 60.0
    execution = hub.enqueue([{"log": "one"}, {"log": "two"}])
    async with running(make_agent()):
        await hub.wait_until(lambda: execution.status == "COMPLETED")
    assert execution.result is not None and [line["message"] for line in execution.result["lines"]][-2:] == [
        "one",
        "two",
    ]
    assert "one" in execution.log_text() and hub.calls["logs"] == 0


async def test_a_hub_from_before_lines_with_complete_gets_every_line_with_logs(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    hub.complete_takes_lines = False  # its auth answer does not say `completeTakesLines`
    execution = hub.enqueue([{"log": "one"}, {"log": "two"}])
    async with running(make_agent()):
        await hub.wait_until(lambda: execution.status == "COMPLETED")
    assert execution.result is not None and "lines" not in execution.result
    assert "one" in execution.log_text() and "two" in execution.log_text() and hub.calls["logs"] >= 1


async def test_the_next_execution_handed_over_by_complete_runs_without_a_poll(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    first, second, third = (hub.enqueue([{"log": name}]) for name in ("first", "second", "third"))
    async with running(make_agent()):
        await hub.wait_until(lambda: third.status == "COMPLETED")
        polls = [i for i, call in enumerate(hub.sequence) if call == "poll"]
    assert first.status == second.status == "COMPLETED"
    assert all(execution.result and execution.result["takeNext"] is True for execution in (first, second, third))
    # One poll brought the first; the two others came with the answers to `complete`.
    ran = [call for call in hub.sequence[polls[0] :] if call in ("poll", "start", "complete")]
    assert ran[:7] == ["poll", "start", "complete", "start", "complete", "start", "complete"]


async def test_an_execution_queued_while_the_report_waits_comes_with_its_answer(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    first = hub.enqueue([{"log": "first"}])
    async with running(make_agent()):
        await hub.wait_until(lambda: first.status == "COMPLETED")  # its report now waits for the next one
        second = hub.enqueue([{"log": "second"}])
        await hub.wait_until(lambda: second.status == "COMPLETED")
    assert first.result is not None and first.result["wait"] == min(hub.long_poll, REPORT_WAIT_SECONDS)
    ran = [call for call in hub.sequence if call in ("poll", "start", "complete")]
    assert ran[:5] == ["poll", "start", "complete", "start", "complete"]


async def test_a_hub_from_before_complete_handed_over_work_is_polled_for_each_execution(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    hub.complete_hands_next = False  # its auth answer does not say `completeHandsNext`
    first, second = hub.enqueue([{"log": "first"}]), hub.enqueue([{"log": "second"}])
    async with running(make_agent()):
        await hub.wait_until(lambda: second.status == "COMPLETED")
    assert first.result is not None and "takeNext" not in first.result
    ran = [call for call in hub.sequence if call in ("poll", "start", "complete")]
    assert ran[:6] == ["poll", "start", "complete", "poll", "start", "complete"]


async def test_wrong_secret_backs_off_instead_of_hammering_the_hub(
    hub: FakeHub, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exekra.runner")
    async with running(make_agent(machine_secret="wrong")):
        await asyncio.sleep(2.0)  # observing a time window is the point of this test
    assert 3 <= hub.calls["auth"] <= 10  # base 0.1 s doubling to 0.5 s: about 6 attempts
    assert len(messages(caplog, "rejected the machine key")) == 1
    assert hub.calls["poll"] == 0


async def test_401_on_a_call_re_authenticates_and_carries_on(hub: FakeHub, make_agent: MakeAgent) -> None:
    async with running(make_agent()):
        await hub.wait_until(lambda: len(hub.heartbeats) >= 1)
        hub.revoke_tokens()
        seen = len(hub.heartbeats)
        await hub.wait_until(lambda: hub.calls["auth"] >= 2 and len(hub.heartbeats) > seen)
    assert hub.unauthorized >= 1


async def test_token_is_renewed_before_it_expires(hub: FakeHub, make_agent: MakeAgent) -> None:
    hub.token_ttl = 1
    async with running(make_agent()):
        await hub.wait_until(lambda: hub.calls["auth"] >= 3, within=5)
    assert hub.unauthorized == 0


@pytest.mark.parametrize("via", ["heartbeat", "logs"])
async def test_stop_request_kills_the_tree_and_reports_stopped(
    via: str, hub: FakeHub, make_agent: MakeAgent, alive: Callable[[int], bool]
) -> None:
    execution = hub.enqueue([{"spawn": "session"}, {"sleep": 30}])
    async with running(make_agent()):
        child = await child_pid(hub, execution)
        hub.request_stop(execution, via)
        await hub.wait_until(lambda: execution.status == "STOPPED")
    assert not alive(child)


async def test_409_on_logs_abandons_kills_and_takes_the_next_execution(
    hub: FakeHub, make_agent: MakeAgent, alive: Callable[[int], bool]
) -> None:
    lost = hub.enqueue([{"spawn": "session"}, {"sleep": 30}])
    async with running(make_agent()):
        child = await child_pid(hub, lost)
        hub.withdraw(lost)
        await hub.wait_until(lambda: not alive(child))
        following = hub.enqueue([{"log": "next"}])
        await hub.wait_until(lambda: following.status == "COMPLETED")
    assert lost.result is None and hub.calls["complete"] == 1


async def test_workflow_timeout_fails_the_execution(hub: FakeHub, make_agent: MakeAgent) -> None:
    execution = hub.enqueue([{"sleep": 30}], timeout=1)
    async with running(make_agent()):
        await hub.wait_until(lambda: execution.status == "FAILED")
    assert execution.result is not None and execution.result["error"] == "timed out after 1 s"


async def test_running_execution_handed_back_after_a_restart_is_reported_failed(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    orphan = hub.hold_running([{"sleep": 30}])
    async with running(make_agent()):
        await hub.wait_until(lambda: orphan.status == "FAILED")
    assert orphan.result is not None and orphan.result["error"] == "runner restarted"
    assert hub.calls["start"] == 0


async def test_agent_reconnects_after_a_hub_outage_logging_each_change_once(
    hub_server: HubServer, hub: FakeHub, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exekra.runner")
    async with running(make_agent()):
        await hub.wait_until(lambda: len(hub.heartbeats) >= 1)
        await hub_server.stop()
        await asyncio.sleep(1.5)  # the outage: several retries happen meanwhile
        await hub_server.start()
        execution = hub.enqueue([{"log": "after the outage"}])
        await hub.wait_until(lambda: execution.status == "COMPLETED")
    assert len(messages(caplog, "hub unreachable")) == 1
    assert len(messages(caplog, "connected to hub")) == 2


async def test_log_lines_name_the_runner_as_the_hub_knows_it_once_connected(
    hub: FakeHub, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exekra.runner")
    async with running(make_agent()):
        execution = hub.enqueue([{"log": "named"}])
        await hub.wait_until(lambda: execution.status == "COMPLETED")
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("exekra.runner")]
    connected = next(i for i, line in enumerate(lines) if "connected to hub" in line)
    assert all(line.startswith("runner hub-name: ") for line in lines[connected:]), lines
    assert not lines[0].startswith("runner hub-name: ")  # before the hub answered, the local name


async def test_shutdown_stops_the_running_execution_and_reports_it(hub: FakeHub, make_agent: MakeAgent) -> None:
    execution = hub.enqueue([{"spawn": "group"}, {"sleep": 30}])
    waiting = hub.enqueue([{"log": "not taken"}])
    agent = make_agent()
    task = asyncio.create_task(agent.run())
    await child_pid(hub, execution)
    agent.request_shutdown()
    await asyncio.wait_for(task, 10)
    assert execution.status == "STOPPED"
    # A runner shutting down asks for no next execution in its report, and starts none.
    assert execution.result is not None and "takeNext" not in execution.result
    assert waiting.status == "QUEUED" and hub.calls["start"] == 1


async def test_runner_declares_its_catalogue_at_auth_and_only_a_digest_in_heartbeats(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    async with running(make_agent()):
        await hub.wait_until(lambda: len(hub.heartbeats) >= 2)
    declared = hub.auths[0]["catalogue"]
    names = {entry["name"] for entry in declared["activities"]}
    assert {"shell.run", "http.request"} <= names
    assert all(
        {"name", "params", "outputs", "capability", "package", "version"} <= set(e) for e in declared["activities"]
    )
    assert isinstance(declared["capabilities"], list) and len(declared["digest"]) == 64
    assert all(beat["catalogueDigest"] == declared["digest"] and "catalogue" not in beat for beat in hub.heartbeats)


async def test_runner_sends_its_catalogue_again_when_the_hub_holds_another_digest(
    hub: FakeHub, make_agent: MakeAgent
) -> None:
    async with running(make_agent()):
        await hub.wait_until(lambda: len(hub.heartbeats) >= 1)
        hub.catalogue_digest = None  # the hub lost the declaration (its runner row was restored, say)
        await hub.wait_until(lambda: any("catalogue" in beat for beat in hub.heartbeats))
        await hub.wait_until(lambda: hub.catalogue_digest is not None)
    resent = next(beat for beat in hub.heartbeats if "catalogue" in beat)
    assert resent["catalogue"]["digest"] == resent["catalogueDigest"] == hub.auths[0]["catalogue"]["digest"]
