"""A worker whose runner dies (even by SIGKILL) stops its workflow and leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from exekra.runner.worker import ORPHAN_GRACE_SECONDS

FAKE_ENGINE = Path(__file__).with_name("runner_fake_engine.py")
# A stand-in runner: runs one job through the real executor and worker, printing the log lines.
RUNNER = """
import asyncio, sys
from exekra.runner.config import RunnerConfig
from exekra.runner.executor import Executor, Job

async def main() -> None:
    config = RunnerConfig(hub_url="http://127.0.0.1:9", machine_key="k", machine_secret="s", workdir=sys.argv[2])
    executor = Executor(config, worker_command=(sys.executable, sys.argv[1]), prestart=False)

    async def logs(lines):
        for line in lines:
            print(line["message"], flush=True)
        return False

    steps = [{"spawn": "session"}, {"pid": "_"}, {"ignore_sigterm": "_"}, {"sleep": 60}]
    await executor.run(Job("ex-1", 1, {"steps": steps}), logs, stop=asyncio.Event(), report_interval=0.1)

if sys.argv[3] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


def read_pids(process: subprocess.Popen[str], labels: tuple[str, ...], within: float) -> dict[str, int]:
    """The pids the stand-in runner's log announces (`<label> pid N`), read from its output."""
    found: dict[str, int] = {}
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(r"(\w+) pid (\d+)", line)
            if match and match.group(1) in labels:
                found[match.group(1)] = int(match.group(2))
            if len(found) == len(labels):
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(within), f"the runner did not announce {labels}: {found}"
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_worker_whose_runner_is_killed_stops_and_takes_its_detached_children_along(loop: str, tmp_path: Path) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(FAKE_ENGINE), str(tmp_path / "work"), loop],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pids = read_pids(runner, ("worker", "child"), within=20)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(5)
        # The worker ignores SIGTERM and its child left the group: only the orphan watch can end them.
        deadline = time.monotonic() + ORPHAN_GRACE_SECONDS + 5
        while not all(gone(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {label: gone(pid) for label, pid in pids.items()} == {"worker": True, "child": True}
    finally:
        runner.kill()
        runner.wait(5)
