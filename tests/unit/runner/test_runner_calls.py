"""The worker's calls to its runner over real pipes (`exekra.runner.calls`): answers matched by id in any order,
refusals raised with the hub's status and code, a stop interrupting a wait, the runner's end failing what waits."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import pytest

from exekra.runner.calls import RunnerCalls, answer, refusal
from exekra.workflow.hubcalls import CallInterrupted, HubCallFailed


@dataclass
class Runner:
    """The runner's end of the pipes, driven by the test: calls arrive in `calls`, `reply` answers one."""

    replies: IO[bytes]
    calls: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def reply(self, message: dict[str, Any]) -> None:
        self.replies.write(json.dumps(message).encode() + b"\n")
        self.replies.flush()

    def next_call(self) -> dict[str, Any]:
        return self.calls.get(timeout=5)


@pytest.fixture
def channel() -> Iterator[tuple[RunnerCalls, Runner]]:
    read_fd, write_fd = os.pipe()
    runner = Runner(os.fdopen(write_fd, "wb"))
    calls = RunnerCalls(runner.calls.put, os.fdopen(read_fd, "rb"))
    yield calls, runner
    if not runner.replies.closed:
        runner.replies.close()


def test_answers_reach_their_calls_in_any_order(channel: tuple[RunnerCalls, Runner]) -> None:
    calls, runner = channel
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(calls.call, "children.start", {"n": 1})
        one = runner.next_call()
        second = pool.submit(calls.call, "children.start", {"n": 2})
        two = runner.next_call()
        runner.reply(answer(two["id"], {"n": two["body"]["n"]}))
        runner.reply(answer(one["id"], {"n": one["body"]["n"]}))

        assert (first.result(5), second.result(5)) == ({"n": 1}, {"n": 2})
    assert one["type"] == "call" and one["op"] == "children.start" and one["id"] != two["id"]


def test_a_refusal_is_raised_with_the_hubs_status_and_code(channel: tuple[RunnerCalls, Runner]) -> None:
    calls, runner = channel
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(calls.call, "children.start", {})
        made = runner.next_call()
        runner.reply(refusal(made["id"], "409 too deep", status=409, code="subworkflow_refused"))

        with pytest.raises(HubCallFailed, match="409 too deep") as raised:
            pending.result(5)
    assert (raised.value.status, raised.value.code) == (409, "subworkflow_refused")


def test_a_stop_interrupts_a_waiting_call(channel: tuple[RunnerCalls, Runner]) -> None:
    calls, runner = channel
    cancelled = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(calls.call, "children.wait", {}, cancelled=cancelled)
        runner.next_call()
        cancelled.set()

        with pytest.raises(CallInterrupted):
            pending.result(5)


def test_the_runners_end_fails_the_waiting_calls_and_every_later_one(channel: tuple[RunnerCalls, Runner]) -> None:
    calls, runner = channel
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(calls.call, "children.wait", {})
        runner.next_call()
        runner.replies.close()

        with pytest.raises(HubCallFailed, match="no longer answers"):
            pending.result(5)
    with pytest.raises(HubCallFailed, match="no longer answers"):
        calls.call("children.stop", {}, timeout=1)
