"""`exekra.runner.agent.main` as the CLI runs it: a real process, configured from the environment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import FakeHub, HubServer

RUNNER = "import sys; from exekra.runner.agent import main; from exekra.runner.config import RunnerConfig as C; sys.exit(main(C.from_env()))"


async def test_sigterm_stops_the_running_execution_reports_it_and_exits_0(
    hub_server: HubServer, hub: FakeHub, tmp_path: Path
) -> None:
    command = {"command": "echo started; sleep 30", "shell": True}
    execution = hub.enqueue(definition={"nodes": [{"id": "sh", "activity": "shell.run", "params": command}]})
    env = {
        **os.environ,
        "EXEKRA_HUB_URL": hub_server.url,
        "EXEKRA_MACHINE_KEY": hub.machine_key,
        "EXEKRA_MACHINE_SECRET": hub.machine_secret,
        "EXEKRA_RUNNER_WORKDIR": str(tmp_path / "work"),
    }
    runner = await asyncio.create_subprocess_exec(sys.executable, "-c", RUNNER, env=env, stderr=asyncio.subprocess.PIPE)
    try:
        await hub.wait_until(lambda: "started" in execution.log_text(), within=30)
        runner.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(runner.communicate(), 15)
    finally:
        if runner.returncode is None:
            runner.kill()
            await runner.wait()
    assert runner.returncode == 0, stderr.decode()
    assert execution.status == "STOPPED"
    assert "connected to hub" in stderr.decode()
