"""A protocol-level runner for the chaos test, run as its own process so that it can be killed with SIGKILL.

It speaks SPEC §7.3 over plain HTTP, pretends to work for a moment, and appends every step to a journal
(one JSON object per line, written unbuffered so that a SIGKILL loses nothing). Connection errors and
5xx answers (the hub or its database restarting) are retried with backoff; 401 leads to a new `auth`;
409 means the hub moved the execution on, and the runner abandons it. `--hang-on-offer N` /
`--hang-on-start N` make it freeze while holding its Nth execution ASSIGNED / RUNNING (still heartbeating),
so that the test can kill it right there. With `--hang-claims DIR`, every runner may be the one: the first to get
there claims `DIR/ASSIGNED` (or `DIR/RUNNING`) and freezes, the others go on working.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from typing import Any

import httpx


class Journal:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, event: str, **fields: Any) -> None:
        os.write(self.fd, (json.dumps({"t": time.time(), "event": event, **fields}) + "\n").encode())


class ChaosRunner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.journal = Journal(args.journal)
        self.http = httpx.AsyncClient(base_url=args.hub_url, timeout=15)
        self.token = ""
        self.heartbeat_interval = 1.0

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The hub's answer below 500, however long the hub or its database takes to come back."""
        delay = 0.05
        while True:
            try:
                headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
                response = await self.http.request(method, path, headers=headers, **kwargs)
                if response.status_code == 401 and path != "/api/runner/auth":
                    await self.auth()
                    continue
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def auth(self) -> None:
        body = {"machineKey": self.args.machine_key, "machineSecret": self.args.machine_secret, "hostname": "chaos"}
        while True:
            response = await self.call("POST", "/api/runner/auth", json=body)
            if response.status_code == 200:
                answer = response.json()
                self.token = answer["token"]
                self.heartbeat_interval = answer["heartbeatIntervalSeconds"]
                return
            await asyncio.sleep(1)

    async def heartbeat_forever(self) -> None:
        metrics = {"cpuPercent": 1.0, "memoryPercent": 10.0, "memoryUsedMb": 100, "diskPercent": 10, "diskFreeGb": 100}
        while True:
            await self.call("POST", "/api/runner/heartbeat", json=metrics)
            await asyncio.sleep(self.heartbeat_interval)

    async def hang(self, execution_id: str, attempt: int, status: str) -> None:
        if self.args.hang_claims:
            try:
                os.close(os.open(os.path.join(self.args.hang_claims, status), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return  # another runner froze holding this state already
        self.journal.write("hang", id=execution_id, attempt=attempt, status=status)
        await asyncio.Event().wait()

    async def work_forever(self) -> None:
        offers = starts = 0
        started: tuple[str, int] | None = None  # the attempt this process last asked to start
        while True:
            polled = await self.call("GET", "/api/runner/poll", params={"wait": 2})
            if polled.status_code != 200:
                continue
            execution = polled.json()["execution"]
            execution_id, attempt, status = execution["id"], execution["attempt"], execution["status"]
            self.journal.write("offer", id=execution_id, attempt=attempt, status=status)
            if status == "RUNNING" and (execution_id, attempt) != started:
                await self.finish(execution_id, attempt, "FAILED", "runner restarted")  # SPEC §7.3
                continue
            if status == "ASSIGNED":
                offers += 1
                if offers == self.args.hang_on_offer:
                    await self.hang(execution_id, attempt, status)
                started = (execution_id, attempt)
                answer = await self.call(
                    "POST", f"/api/runner/executions/{execution_id}/start", json={"attempt": attempt}
                )
                self.journal.write("start", id=execution_id, attempt=attempt, code=answer.status_code)
                if answer.status_code != 200:
                    continue  # moved on by the hub, or started already (a lost answer): the next poll tells
            starts += 1
            if starts == self.args.hang_on_start:
                await self.hang(execution_id, attempt, "RUNNING")
            await asyncio.sleep(random.uniform(self.args.work_min, self.args.work_max))
            lines = {"attempt": attempt, "lines": [{"level": "INFO", "message": f"worked on attempt {attempt}"}]}
            logged = await self.call("POST", f"/api/runner/executions/{execution_id}/logs", json=lines)
            if logged.status_code != 200:
                self.journal.write("abandon", id=execution_id, attempt=attempt, code=logged.status_code)
                continue
            await self.finish(execution_id, attempt, "COMPLETED", None)

    async def finish(self, execution_id: str, attempt: int, status: str, error: str | None) -> None:
        body = {"attempt": attempt, "status": status, "error": error, "outputs": {"attempt": attempt}}
        answer = await self.call("POST", f"/api/runner/executions/{execution_id}/complete", json=body)
        self.journal.write("complete", id=execution_id, attempt=attempt, status=status, code=answer.status_code)

    async def run(self) -> None:
        await self.auth()
        self.journal.write("ready")
        await asyncio.gather(self.heartbeat_forever(), self.work_forever())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--machine-key", required=True)
    parser.add_argument("--machine-secret", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--work-min", type=float, default=0.01)
    parser.add_argument("--work-max", type=float, default=0.05)
    parser.add_argument("--hang-on-offer", type=int, default=0)
    parser.add_argument("--hang-on-start", type=int, default=0)
    parser.add_argument("--hang-claims", default="")
    asyncio.run(ChaosRunner(parser.parse_args()).run())


if __name__ == "__main__":
    main()
