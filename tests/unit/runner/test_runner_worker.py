"""The real worker (`python -m exekra.runner.worker`) running the real workflow engine."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

from exekra.runner.artifacts import ArtifactFile
from exekra.runner.config import RunnerConfig
from exekra.runner.executor import Executor, Job, Outcome


class Lines:
    """Log sink that can wake a test when a line arrives."""

    def __init__(self) -> None:
        self.lines: list[dict[str, str]] = []
        self.changed = asyncio.Event()

    async def __call__(self, batch: list[dict[str, str]]) -> bool:
        self.lines.extend(batch)
        self.changed.set()
        return False

    @property
    def text(self) -> str:
        return "\n".join(line["message"] for line in self.lines)


@pytest.fixture
async def executor(make_config: Callable[..., RunnerConfig]) -> Any:
    executor = Executor(make_config())
    executor.prestart()
    yield executor
    await executor.aclose()


async def run(executor: Executor, definition: dict[str, Any], lines: Lines, **fields: Any) -> Outcome:
    stop = fields.pop("stop", asyncio.Event())
    job = Job(execution_id="ex-1", attempt=2, definition=definition, **fields)
    return await asyncio.wait_for(executor.run(job, lines, stop=stop, report_interval=0.2), 30)


async def test_python_run_exit_code_fails_the_execution_with_the_node_named(executor: Executor) -> None:
    definition = {
        "inputs": {"who": {"type": "string"}},
        "nodes": [
            {"id": "say", "activity": "log.message", "params": {"message": "hi {{ inputs.who }}"}},
            {"id": "py", "activity": "python.run", "params": {"script": "import os\nprint('out')\nos._exit(3)"}},
        ],
        "edges": [{"from": "say", "to": "py"}],
    }
    lines = Lines()
    outcome = await run(executor, definition, lines, inputs={"who": "bob"})
    assert outcome.status == "FAILED" and outcome.error is not None and "exit code 3" in outcome.error
    assert "hi bob" in lines.text and "out" in lines.text


async def test_outputs_come_back_and_credentials_are_masked(executor: Executor) -> None:
    definition = {
        "nodes": [
            {
                "id": "py",
                "activity": "python.run",
                "params": {"script": "print('{{ credentials.api.token }}')\nresult = 41 + 1"},
            }
        ],
        "outputs": {"answer": "{{ nodes.py.result }}", "attempt": "{{ execution.attempt }}"},
    }
    lines = Lines()
    outcome = await run(executor, definition, lines, credentials={"api": {"token": "tok-secret-1"}})
    assert outcome.status == "COMPLETED", outcome.error
    assert outcome.outputs is not None and str(outcome.outputs["answer"]) == "42"
    assert str(outcome.outputs["attempt"]) == "2"
    assert "tok-secret-1" not in lines.text and "***" in lines.text


async def test_stop_kills_a_running_shell_command(executor: Executor, alive: Callable[[int], bool]) -> None:
    definition = {
        "nodes": [
            {"id": "sh", "activity": "shell.run", "params": {"command": "echo pid $$; exec sleep 30", "shell": True}}
        ]
    }
    lines, stop = Lines(), asyncio.Event()
    task = asyncio.create_task(run(executor, definition, lines, stop=stop))
    async with asyncio.timeout(20):
        while not (match := re.search(r"pid (\d+)", lines.text)):
            lines.changed.clear()
            await lines.changed.wait()
    stop.set()
    assert (await task).status == "STOPPED"
    assert not alive(int(match.group(1)))


async def test_workflows_do_not_see_the_runners_settings(
    make_config: Callable[..., RunnerConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXEKRA_MACHINE_SECRET", "ms-from-the-environment")
    monkeypatch.setenv("EXEKRA_HUB_URL", "http://hub.invalid")
    executor = Executor(make_config(), prestart=False)
    definition = {
        "nodes": [{"id": "env", "activity": "shell.run", "params": {"command": ["env"]}}],
        "outputs": {"env": "{{ nodes.env.stdout }}"},
    }
    outcome = await run(executor, definition, Lines())
    await executor.aclose()
    assert outcome.status == "COMPLETED" and outcome.outputs is not None, outcome.error
    assert "ms-from-the-environment" not in outcome.outputs["env"]
    names = [line.split("=", 1)[0] for line in outcome.outputs["env"].splitlines()]
    assert [name for name in names if name.startswith("EXEKRA_")] == ["EXEKRA_PROCESS_TREE"]


async def test_a_file_attached_by_a_node_reaches_the_runner_as_an_artifact(executor: Executor) -> None:
    definition = {
        "nodes": [
            {"id": "write", "activity": "file.write", "params": {"path": "out/report.txt", "content": "totals"}},
            {"id": "attach", "activity": "file.attach", "params": {"path": "out/report.txt", "name": "report"}},
        ],
        "edges": [{"from": "write", "to": "attach"}],
        "outputs": {"attached": "{{ nodes.attach }}"},
    }
    received: list[tuple[str, str, int, str]] = []

    async def upload(artifact: ArtifactFile) -> None:
        received.append((artifact.name, artifact.path.read_text(), artifact.size, artifact.node_id))

    job = Job(execution_id="ex-1", attempt=2, definition=definition)
    outcome = await asyncio.wait_for(
        executor.run(job, Lines(), stop=asyncio.Event(), report_interval=0.2, send_artifact=upload), 30
    )
    assert outcome.status == "COMPLETED", outcome.error
    assert received == [("report", "totals", 6, "attach")]
    assert outcome.outputs == {"attached": {"name": "report", "bytes": 6, "contentType": "application/octet-stream"}}


async def test_an_output_naming_a_file_in_the_work_directory_is_warned_about(
    executor: Executor, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The work directory is deleted when the execution ends: a relative `file.write` path vanishes with it
    (issue 13, item 13). A file written outside it is kept and not warned about."""
    kept = tmp_path_factory.mktemp("kept") / "report.txt"
    definition = {
        "nodes": [
            {"id": "here", "activity": "file.write", "params": {"path": "out/report.txt", "content": "x"}},
            {"id": "there", "activity": "file.write", "params": {"path": str(kept), "content": "y"}},
        ],
        "edges": [{"from": "here", "to": "there"}],
        "outputs": {
            "report": "{{ nodes.here.path }}",
            "relative": "out/report.txt",
            "kept": "{{ nodes.there.path }}",
            "words": "out",
        },
    }
    lines = Lines()
    outcome = await run(executor, definition, lines)
    assert outcome.status == "COMPLETED", outcome.error
    warnings = [line["message"] for line in lines.lines if line["level"] == "WARNING"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("output 'report' ") and "deleted when the execution ends" in warnings[0]
    assert warnings[1].startswith("output 'relative' ")
    assert kept.read_text() == "y"
