"""LogStream batching and the backoff schedule of the session."""

from __future__ import annotations

import asyncio

import pytest

from exekra.runner import logstream
from exekra.runner.logstream import LogStream
from exekra.runner.session import backoff_delay
from exekra.workflow.masking import SecretMasker


async def test_lines_go_out_in_batches_of_at_most_200() -> None:
    batches: list[list[dict[str, str]]] = []

    async def send(lines: list[dict[str, str]]) -> bool:
        batches.append(lines)
        return False

    stream = LogStream(send, report_interval=30, on_stop=lambda: None)
    for number in range(450):
        stream.add("warn", f"line {number}")
    stream.finish()
    await asyncio.wait_for(stream.run(), 5)
    assert [len(batch) for batch in batches] == [200, 200, 50]
    assert batches[0][0]["level"] == "WARNING" and batches[2][-1]["message"] == "line 449"


async def test_finishing_with_keep_last_sends_full_batches_and_leaves_the_last_for_the_final_report() -> None:
    batches: list[list[dict[str, str]]] = []

    async def send(lines: list[dict[str, str]]) -> bool:
        batches.append(lines)
        return False

    stream = LogStream(send, report_interval=30, on_stop=lambda: None)
    for number in range(450):
        stream.add("info", f"line {number}")
    stream.finish(keep_last=True)
    await asyncio.wait_for(stream.run(), 5)
    assert [len(batch) for batch in batches] == [200, 200]
    rest = stream.take_rest()
    assert [line["message"] for line in rest] == [f"line {n}" for n in range(400, 450)]
    assert stream.take_rest() == []

    quiet = LogStream(send, report_interval=30, on_stop=lambda: None)
    quiet.finish(keep_last=True)
    await asyncio.wait_for(quiet.run(), 5)
    assert quiet.take_rest() == [] and len(batches) == 2  # nothing to say: no request at all


async def test_big_lines_are_split_by_size_and_sent_without_waiting() -> None:
    batches: list[list[dict[str, str]]] = []
    most_sent = asyncio.Event()

    async def send(lines: list[dict[str, str]]) -> bool:
        batches.append(lines)
        if sum(map(len, batches)) >= 16:
            most_sent.set()
        return False

    stream = LogStream(send, report_interval=30, on_stop=lambda: None)
    task = asyncio.create_task(stream.run())
    for _ in range(20):
        stream.add("INFO", "x" * 15_000)
    await asyncio.wait_for(most_sent.wait(), 0.4)  # under the linger time: full batches do not wait
    assert max(sum(len(line["message"]) for line in batch) for batch in batches) <= logstream.BATCH_CHARS
    stream.finish()
    await asyncio.wait_for(task, 5)
    assert sum(map(len, batches)) == 20


async def test_overflow_drops_the_oldest_lines_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, str]] = []

    async def send(lines: list[dict[str, str]]) -> bool:
        sent.extend(lines)
        return False

    monkeypatch.setattr(logstream, "MAX_BUFFERED_LINES", 5)
    stream = LogStream(send, report_interval=30, on_stop=lambda: None)
    for number in range(8):
        stream.add("INFO", f"line {number}")
    stream.finish()
    await asyncio.wait_for(stream.run(), 5)
    assert [line["message"] for line in sent][1:] == [f"line {n}" for n in range(3, 8)]
    assert sent[0]["message"] == "3 log lines were dropped while the hub was unreachable"


async def test_stop_requested_answer_calls_back() -> None:
    stopped = asyncio.Event()

    async def send(lines: list[dict[str, str]]) -> bool:
        return True

    stream = LogStream(send, report_interval=0.05, on_stop=stopped.set)
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(stopped.wait(), 5)
    stream.finish()
    await asyncio.wait_for(task, 5)


async def test_lines_are_masked_with_the_workflow_masker_each_line_of_a_multi_line_secret_too() -> None:
    """The runner masks what the worker's process tree prints with the same masker as the engine."""
    credentials = {"key": {"pem": "-----BEGIN KEY-----\nAAAA1111\nBBBB2222\n-----END KEY-----"}, "a": {"pw": "hunter2"}}
    sent: list[dict[str, str]] = []

    async def send(batch: list[dict[str, str]]) -> bool:
        sent.extend(batch)
        return False

    stream = LogStream(
        send, report_interval=60, on_stop=lambda: None, mask=SecretMasker.for_credentials(credentials).text
    )
    task = asyncio.create_task(stream.run())
    for line in ("BBBB2222", "key AAAA1111 and hunter2", "-----END KEY-----", "plain"):
        stream.add("INFO", line)
    stream.finish()
    await asyncio.wait_for(task, 5)
    assert [line["message"] for line in sent] == ["***", "key *** and ***", "***", "plain"]


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter() -> None:
    assert backoff_delay(0, 1, 60) == 0
    for failures, nominal in [(1, 1), (2, 2), (3, 4), (7, 60), (30, 60)]:
        assert 0.8 * nominal <= backoff_delay(failures, 1, 60) <= 1.2 * nominal
