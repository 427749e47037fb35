"""The executor: one execution in a child process group, driven through the real worker and a fake engine."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from exekra.runner.client import Conflict
from exekra.runner.config import RunnerConfig
from exekra.runner.executor import ExecutionAbandoned, Executor, Job, Outcome

MakeExecutor = Callable[..., Executor]


class LogRecorder:
    """Stands in for the hub's `logs` call: records batches, can answer stopRequested or refuse."""

    def __init__(self, *, stop_after: str | None = None, refuse_after: str | None = None) -> None:
        self.lines: list[dict[str, str]] = []
        self.batches = 0
        self.stop_after = stop_after
        self.refuse_after = refuse_after
        self._changed = asyncio.Event()

    async def __call__(self, lines: list[dict[str, str]]) -> bool:
        self.batches += 1
        self.lines.extend(lines)
        self._changed.set()
        if self.refuse_after and self.refuse_after in self.text:
            raise Conflict("409 attempt 1 is stale", status=409)
        return bool(self.stop_after and self.stop_after in self.text)

    @property
    def text(self) -> str:
        return "\n".join(line["message"] for line in self.lines)

    async def wait_for_pid(self, label: str) -> int:
        async with asyncio.timeout(10):
            while not (match := re.search(rf"{label} pid (\d+)", self.text)):
                self._changed.clear()
                await self._changed.wait()
        return int(match.group(1))


def job(steps: list[dict[str, Any]], **fields: Any) -> Job:
    return Job(execution_id="ex-1", attempt=1, definition={"steps": steps}, **fields)


async def run(executor: Executor, the_job: Job, logs: LogRecorder, stop: asyncio.Event | None = None) -> Outcome:
    coroutine = executor.run(the_job, logs, stop=stop or asyncio.Event(), report_interval=0.2)
    return await asyncio.wait_for(coroutine, 20)


async def test_completed_job_returns_outputs_streams_logs_and_removes_its_workdir(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    config = make_config()
    logs = LogRecorder()
    outcome = await run(
        make_executor(config),
        job([{"mark": "fetch/started"}, {"log": "hello"}, {"print": "stray"}], inputs={"a": 1}),
        logs,
    )
    assert (outcome.status, outcome.error, outcome.outputs) == ("COMPLETED", None, {"echo": {"a": 1}, "attempt": 1})
    by_message = {line["message"]: line for line in logs.lines}
    assert by_message["hello"]["level"] == "INFO" and by_message["hello"]["ts"].endswith("Z")
    assert by_message["stray"]["level"] == "WARNING"  # fd 1 of the workflow goes to stderr, not the events
    assert "node" not in by_message["hello"] and "event" not in by_message["hello"]
    assert (by_message["node fetch started"]["node"], by_message["node fetch started"]["event"]) == ("fetch", "started")
    assert outcome.metrics.mem_peak_mb > 0
    assert list((config.work_root / "executions").iterdir()) == []


async def test_credential_values_are_masked_in_logs_and_errors(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    logs = LogRecorder()
    steps = [{"log": "token is s3cr3t-value"}, {"print": "s3cr3t-value"}, {"fail": "bad s3cr3t-value"}]
    outcome = await run(make_executor(make_config()), job(steps, credentials={"api": {"token": "s3cr3t-value"}}), logs)
    assert outcome.status == "FAILED" and outcome.error == "bad ***"
    assert "s3cr3t" not in logs.text and "token is ***" in logs.text


async def test_prestarted_worker_takes_the_next_job_and_is_dismissed_on_close(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor, alive: Callable[[int], bool]
) -> None:
    executor = make_executor(make_config())
    executor.prestart()
    assert executor._warm is not None
    warm_pid = (await executor._warm).process.pid
    logs = LogRecorder()
    assert (await run(executor, job([{"pid": "_"}]), logs)).status == "COMPLETED"
    assert f"worker pid {warm_pid}" in logs.text
    assert executor._warm is not None  # the next one is already waiting
    next_pid = (await executor._warm).process.pid
    await executor.aclose()
    assert not alive(next_pid)


@pytest.mark.parametrize("spawn", ["group", "session"])
async def test_stop_kills_the_whole_tree_and_reports_stopped(
    spawn: str,
    make_config: Callable[..., RunnerConfig],
    make_executor: MakeExecutor,
    alive: Callable[[int], bool],
) -> None:
    logs, stop = LogRecorder(), asyncio.Event()
    task = asyncio.create_task(run(make_executor(make_config()), job([{"spawn": spawn}, {"sleep": 30}]), logs, stop))
    child = await logs.wait_for_pid("child")
    stop.set()
    outcome = await task
    assert outcome.status == "STOPPED"
    assert not alive(child)
    assert "stop requested" in logs.text


async def test_stop_escalates_to_sigkill_when_the_worker_ignores_sigterm(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor, alive: Callable[[int], bool]
) -> None:
    logs, stop = LogRecorder(), asyncio.Event()
    executor = make_executor(make_config(), kill_grace_seconds=0.3)
    steps = [{"ignore_sigterm": "_"}, {"pid": "_"}, {"sleep": 30}]
    task = asyncio.create_task(run(executor, job(steps), logs, stop))
    worker = await logs.wait_for_pid("worker")
    began = time.monotonic()
    stop.set()
    assert (await task).status == "STOPPED"
    assert time.monotonic() - began < 5
    assert not alive(worker)


async def test_stop_requested_in_the_log_answer_stops_the_execution(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    logs = LogRecorder(stop_after="ready")
    outcome = await run(make_executor(make_config()), job([{"log": "ready"}, {"sleep": 30}]), logs)
    assert outcome.status == "STOPPED"


async def test_timeout_kills_the_tree_and_fails(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor, alive: Callable[[int], bool]
) -> None:
    logs = LogRecorder()
    task = asyncio.create_task(
        run(make_executor(make_config()), job([{"spawn": "session"}, {"sleep": 30}], timeout_seconds=1), logs)
    )
    child = await logs.wait_for_pid("child")
    outcome = await task
    assert (outcome.status, outcome.error) == ("FAILED", "timed out after 1 s")
    assert not alive(child)


@pytest.mark.parametrize(
    ("step", "reason"),
    [({"exit": 3}, "worker exited with code 3"), ({"signal": "SIGSEGV"}, "worker killed by signal SIGSEGV")],
)
async def test_worker_crash_fails_with_the_reason_and_leaves_no_detached_child(
    step: dict[str, Any],
    reason: str,
    make_config: Callable[..., RunnerConfig],
    make_executor: MakeExecutor,
    alive: Callable[[int], bool],
) -> None:
    logs = LogRecorder()
    outcome = await run(make_executor(make_config()), job([{"spawn": "session"}, step]), logs)
    assert (outcome.status, outcome.error) == ("FAILED", reason)
    assert reason in logs.text
    assert not alive(await logs.wait_for_pid("child"))  # orphaned in its own session: found by its marker


async def test_refused_log_upload_abandons_and_kills_the_tree(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor, alive: Callable[[int], bool]
) -> None:
    logs = LogRecorder(refuse_after="child pid")
    with pytest.raises(ExecutionAbandoned, match="stale"):
        await run(make_executor(make_config()), job([{"spawn": "session"}, {"sleep": 30}]), logs)
    child = await logs.wait_for_pid("child")
    assert not alive(child)


async def test_busy_loop_shows_cpu_peak_and_average(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    outcome = await run(make_executor(make_config()), job([{"busy": 1.0}]), LogRecorder())
    metrics = outcome.metrics
    assert metrics.cpu_peak > 0 and 0 < metrics.cpu_avg <= metrics.cpu_peak  # load on the machine varies
    assert metrics.mem_peak_mb >= metrics.mem_avg_mb > 0


async def test_empty_batches_keep_reaching_the_hub_while_running(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    logs = LogRecorder()
    await run(make_executor(make_config()), job([{"sleep": 1.2}]), logs)
    assert logs.batches >= 4  # report interval 0.2 s: empty batches carry the stop question
