"""Attached files on the runner side: staged by the worker, checked, shipped in order, then removed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from test_runner_executor import LogRecorder, job

from exekra.runner.artifacts import ArtifactCollector, ArtifactFile
from exekra.runner.client import Conflict
from exekra.runner.config import RunnerConfig
from exekra.runner.executor import ExecutionAbandoned, Executor, Job, Outcome

MakeExecutor = Callable[..., Executor]


class Uploads:
    """Stands in for the hub's artifact upload: records name and contents at the time of the call."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.received: list[tuple[str, str, str, int]] = []
        self.refuse = refuse

    async def __call__(self, artifact: ArtifactFile) -> None:
        if self.refuse:
            raise Conflict("409 attempt 1 is stale", status=409)
        self.received.append((artifact.name, artifact.path.read_text(), artifact.content_type, artifact.size))


async def run_with_uploads(executor: Executor, the_job: Job, logs: LogRecorder, uploads: Uploads | None) -> Outcome:
    coroutine = executor.run(the_job, logs, stop=asyncio.Event(), report_interval=0.2, send_artifact=uploads)
    return await asyncio.wait_for(coroutine, 20)


async def test_attached_files_are_shipped_in_order_and_their_staging_folder_is_removed(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    config = make_config()
    uploads = Uploads()
    outcome = await run_with_uploads(
        make_executor(config), job([{"attach": "report.csv"}, {"attach": "shot.png"}]), LogRecorder(), uploads
    )

    assert outcome.status == "COMPLETED"
    assert uploads.received == [
        ("report.csv", "contents of report.csv", "text/csv", 22),
        ("shot.png", "contents of shot.png", "image/png", 20),
    ]
    assert [(artifact.name, artifact.node_id) for artifact in outcome.artifacts] == [
        ("report.csv", "fake"),
        ("shot.png", "fake"),
    ]
    assert list((config.work_root / "artifacts").iterdir()) == []


async def test_files_past_the_runners_size_limit_are_refused_with_a_log_line(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    logs, uploads = LogRecorder(), Uploads()
    executor = make_executor(make_config(artifact_max_bytes=30))
    outcome = await run_with_uploads(
        executor, job([{"attach": "a.txt"}, {"attach": "b.txt"}, {"log": "went on"}]), logs, uploads
    )

    # The worker refuses b.txt itself (the node gets the error); the limit travels in the job.
    assert outcome.status == "FAILED"
    assert "would pass the limit of 30 bytes" in (outcome.error or "")
    assert [name for name, *_ in uploads.received] == ["a.txt"]


async def test_a_refused_upload_abandons_the_execution(
    make_config: Callable[..., RunnerConfig], make_executor: MakeExecutor
) -> None:
    with pytest.raises(ExecutionAbandoned, match="stale"):
        await run_with_uploads(
            make_executor(make_config()), job([{"attach": "a.txt"}, {"sleep": 10}]), LogRecorder(), Uploads(refuse=True)
        )


class StreamLines:
    """Stands in for the execution's log stream."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, level: str, message: str) -> None:
        self.messages.append(f"{level} {message}")


async def test_the_collector_refuses_files_outside_its_folder_of_another_size_or_past_the_limit(
    tmp_path: Path,
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    inside = staging / "ok.txt"
    inside.write_text("12345")
    outside = tmp_path / "secret.txt"
    outside.write_text("12345")
    stream = StreamLines()
    collector = ArtifactCollector(staging, 5, None, stream)  # type: ignore[arg-type]

    collector.add({"name": "x", "path": str(outside), "bytes": 5})
    collector.add({"name": "y", "path": str(staging / ".." / "secret.txt"), "bytes": 5})
    collector.add({"name": "z", "path": str(inside), "bytes": 4})
    collector.add({"name": "w", "path": 5, "bytes": 5})
    kept, too_many = staging / "kept.txt", staging / "more.txt"
    kept.write_text("abc")
    too_many.write_text("abc")
    collector.add({"name": "kept.txt", "path": str(kept), "bytes": 3, "contentType": "text/plain", "node": "n"})
    collector.add({"name": "more.txt", "path": str(too_many), "bytes": 3})

    assert collector.accepted == (ArtifactFile("kept.txt", kept, "text/plain", 3, "n"),)
    assert outside.exists()  # never touched
    assert not inside.exists() and not too_many.exists()  # refused files in the folder are deleted
    assert stream.messages == [
        "WARNING artifact x refused: not a file in the execution's staging folder",
        "WARNING artifact y refused: not a file in the execution's staging folder",
        "WARNING artifact z refused: 5 bytes on disk, 4 reported",
        "WARNING artifact w refused: malformed event",
        "WARNING artifact more.txt refused: 3 bytes would pass the execution's limit of 5 bytes",
    ]
