"""HTTP clients of the benchmark: the public API as a user, and simulated runners (SPEC §7.3) on aiohttp.

A simulated runner speaks the real protocol (auth, heartbeat, long poll, start, logs, complete) but runs no
workflow: its "job" is a sleep of the scenario's job time. Thousands share one process and event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

# As the agent's (`exekra.runner.agent.REPORT_WAIT_SECONDS`; not imported: the bench runs against older hub sources
# too): how long a report waits for the runner's next execution.
REPORT_WAIT_SECONDS = 5.0

NOOP_DEFINITION: dict[str, Any] = {
    "nodes": [{"id": "noop", "activity": "log.message", "params": {"message": "bench"}}],
    "edges": [],
}
HEARTBEAT = {"cpuPercent": 5.0, "memoryPercent": 40.0, "memoryUsedMb": 800, "diskPercent": 50, "diskFreeGb": 20}
CALL_RETRIES = 5  # a start or complete answered 503 is sent again, up to this many times


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:300]}")
        self.status = status


def session(limit: int = 0, timeout: float = 60.0) -> aiohttp.ClientSession:
    """A client session for 127.0.0.1: `limit` connections at most (0 = unbounded), orjson bodies."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, force_close=False, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        json_serialize=lambda o: orjson.dumps(o).decode(),
    )


async def request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    seconds: float | None = None,
) -> tuple[int, Any]:
    """One request; returns (status, decoded JSON body or None)."""
    data = orjson.dumps(json) if json is not None else None
    hdrs = {"Content-Type": "application/json", **(headers or {})} if data is not None else headers
    kwargs: dict[str, Any] = {"data": data, "headers": hdrs, "params": params}
    if seconds is not None:
        kwargs["timeout"] = aiohttp.ClientTimeout(total=seconds)
    async with http.request(method, url, **kwargs) as response:
        raw = await response.read()
        try:
            return response.status, (orjson.loads(raw) if raw else None)
        except orjson.JSONDecodeError:  # an overloaded server may answer plain text (e.g. a bare 503)
            return response.status, raw.decode(errors="replace")


class Api:
    """The public API as one signed-in user (bootstrap admin)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str | None = None) -> None:
        self.http = http
        self.base_url = base_url
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        status, body = await request(self.http, method, self.base_url + path, headers=self.headers, **kwargs)
        if status not in expect:
            raise ApiError(method, path, status, orjson.dumps(body).decode() if body else "")
        return body

    async def bootstrap(self, email: str, password: str) -> None:
        body = await self.call(
            "POST", "/api/auth/bootstrap", json={"email": email, "password": password, "name": "bench"}
        )
        self.token = body["token"]

    async def login(self, email: str, password: str) -> None:
        body = await self.call("POST", "/api/auth/login", json={"email": email, "password": password})
        self.token = body["token"]

    async def published_workflow(self, name: str, definition: dict[str, Any] | None = None, **settings: Any) -> str:
        body = await self.call(
            "POST", "/api/workflows", json={"name": name, "definition": definition or NOOP_DEFINITION, **settings}
        )
        workflow_id: str = body["workflow"]["id"]
        await self.call("POST", f"/api/workflows/{workflow_id}/publish")
        return workflow_id

    async def register_runner(self, name: str, **fields: Any) -> dict[str, str]:
        body = await self.call("POST", "/api/runners", json={"name": name, **fields})
        return {"id": body["runner"]["id"], "machineKey": body["machineKey"], "machineSecret": body["machineSecret"]}

    async def register_runners(self, prefix: str, count: int, concurrency: int = 16) -> list[dict[str, str]]:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> dict[str, str]:
            async with gate:
                return await self.register_runner(f"{prefix}-{i:05d}")

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def create_execution(self, workflow_id: str, **fields: Any) -> dict[str, Any]:
        body = await self.call("POST", "/api/executions", json={"workflowId": workflow_id, **fields})
        execution: dict[str, Any] = body["execution"]
        return execution

    async def execution(self, execution_id: str, wait: float = 0) -> dict[str, Any]:
        """`wait` > 0: held by the hub until the execution ends (or `wait` seconds pass)."""
        params = {"wait": str(wait)} if wait > 0 else None
        body = await self.call("GET", f"/api/executions/{execution_id}", params=params)
        execution: dict[str, Any] = body["execution"]
        return execution

    async def health(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.call("GET", "/api/health")
        return body


@dataclass
class Pickup:
    """One execution as a simulated runner saw it."""

    execution_id: str
    attempt: int
    picked_at: float  # perf_counter when the poll answer arrived
    picked_wall: float  # time.time() of the same moment (comparable across processes)
    runner: str
    reported_at: float | None = None  # perf_counter when its report (`complete`) was sent
    completed_at: float | None = None  # when the report was answered (a report may wait for the next execution)


@dataclass
class RunnerStats:
    """What a group of simulated runners measured."""

    pickups: list[Pickup] = field(default_factory=list)
    heartbeat_s: list[float] = field(default_factory=list)
    heartbeat_wall: list[float] = field(default_factory=list)  # when each of `heartbeat_s` was sent (time.time())
    poll_overrun_s: list[float] = field(default_factory=list)  # a 204 long poll's time beyond its `wait`
    call_s: dict[str, list[float]] = field(default_factory=dict)  # start / logs / complete round trips
    errors: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def timed(self, what: str, seconds: float) -> None:
        self.call_s.setdefault(what, []).append(seconds)


class SimRunner:
    """One simulated runner: the protocol without an engine."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        creds: dict[str, str],
        stats: RunnerStats,
        *,
        job_seconds: float = 0.0,
        log_lines: int = 2,
        wait: float = 30.0,
        on_pickup: Callable[[Pickup], None] | None = None,
        on_complete: Callable[[Pickup], None] | None = None,
        on_report: Callable[[Pickup], None] | None = None,
        heartbeat_http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.http = http
        self.heartbeat_http = heartbeat_http or http
        self.base_url = base_url
        self.creds = creds
        self.stats = stats
        self.job_seconds = job_seconds
        self.log_lines = log_lines
        self.wait = wait
        self.on_pickup = on_pickup
        self.on_complete = on_complete
        self.on_report = on_report
        self.token: str | None = None
        self.heartbeat_interval = 30.0
        self.lines_with_complete = False
        self.takes_next = False

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def auth(self) -> None:
        body = {
            "machineKey": self.creds["machineKey"],
            "machineSecret": self.creds["machineSecret"],
            "hostname": "bench",
            "os": "linux",
            "version": "bench",
        }
        status, answer = await request(self.http, "POST", self.base_url + "/api/runner/auth", json=body)
        if status != 200:
            raise ApiError("POST", "/api/runner/auth", status, str(answer))
        self.token = answer["token"]
        self.heartbeat_interval = float(answer.get("heartbeatIntervalSeconds", 30))
        # As the agent does: a hub that takes the last log lines with `complete` gets them there.
        self.lines_with_complete = answer.get("completeTakesLines") is True
        # And one whose `complete` hands over the next execution is asked for it there.
        self.takes_next = answer.get("completeHandsNext") is True

    async def heartbeat(self) -> None:
        sent, t0 = time.time(), time.perf_counter()
        status, _ = await request(
            self.heartbeat_http, "POST", self.base_url + "/api/runner/heartbeat", json=HEARTBEAT, headers=self.headers
        )
        if status == 200:
            self.stats.heartbeat_s.append(time.perf_counter() - t0)
            self.stats.heartbeat_wall.append(sent)
        else:
            self.stats.error(f"heartbeat {status}")

    async def _call(self, what: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer of a runner call, or None when it was refused."""
        t0 = time.perf_counter()
        status, answer = await request(self.http, "POST", self.base_url + path, json=body, headers=self.headers)
        for _ in range(CALL_RETRIES):  # as the agent does, a 503 (retry shortly) is retried; counted as an error too
            if status != 503:
                break
            self.stats.error(f"{what} 503 (retried)")
            await asyncio.sleep(0.1)
            status, answer = await request(self.http, "POST", self.base_url + path, json=body, headers=self.headers)
        self.stats.timed(what, time.perf_counter() - t0)
        if status == 409:
            self.stats.conflicts += 1
            return None
        if status != 200:
            self.stats.error(f"{what} {status}")
            return None
        return answer if isinstance(answer, dict) else {}

    async def poll_once(self) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        status, body = await request(
            self.http,
            "GET",
            self.base_url + "/api/runner/poll",
            params={"wait": str(self.wait)},
            headers=self.headers,
            seconds=self.wait + 30,
        )
        if status == 204:
            self.stats.poll_overrun_s.append(time.perf_counter() - t0 - self.wait)
            return None
        if status != 200:
            self.stats.error(f"poll {status}")
            await asyncio.sleep(1.0)
            return None
        execution: dict[str, Any] = body["execution"]
        return execution

    async def run_execution(self, execution: dict[str, Any]) -> dict[str, Any] | None:
        """Run it; the next execution, when the hub handed one over in the answer to `complete`."""
        pickup = Pickup(execution["id"], execution["attempt"], time.perf_counter(), time.time(), self.creds["id"])
        self.stats.pickups.append(pickup)
        if self.on_pickup is not None:
            self.on_pickup(pickup)
        ident, attempt = execution["id"], execution["attempt"]
        if execution.get("status") == "RUNNING":  # a restarted agent reports what it cannot be running
            await self._call(
                "complete",
                f"/api/runner/executions/{ident}/complete",
                {"attempt": attempt, "status": "FAILED", "error": "runner restarted"},
            )
            return None
        if await self._call("start", f"/api/runner/executions/{ident}/start", {"attempt": attempt}) is None:
            return None
        if self.job_seconds:
            await asyncio.sleep(self.job_seconds)
        lines = [{"level": "INFO", "message": f"bench line {i}"} for i in range(self.log_lines)]
        if (
            lines
            and not self.lines_with_complete
            and await self._call("logs", f"/api/runner/executions/{ident}/logs", {"attempt": attempt, "lines": lines})
            is None
        ):
            return None
        metrics = {"cpuAvg": 1.0, "cpuPeak": 2.0, "memAvgMb": 10.0, "memPeakMb": 12.0}
        body: dict[str, Any] = {"attempt": attempt, "status": "COMPLETED", "outputs": {}, "metrics": metrics}
        if lines and self.lines_with_complete:
            body["lines"] = lines
        if self.takes_next:  # and waits for it as the agent does (`REPORT_WAIT_SECONDS`)
            body["takeNext"], body["wait"] = True, min(self.wait, REPORT_WAIT_SECONDS)
        pickup.reported_at = time.perf_counter()
        if self.on_report is not None:
            self.on_report(pickup)
        answer = await self._call("complete", f"/api/runner/executions/{ident}/complete", body)
        if answer is None:
            return None
        pickup.completed_at = time.perf_counter()
        if self.on_complete is not None:
            self.on_complete(pickup)
        following = answer.get("next")
        return following if isinstance(following, dict) else None

    async def work_loop(self, stop: asyncio.Event) -> None:
        """Long-poll and run executions until `stop` is set (a poll in flight is cancelled by the caller)."""
        while not stop.is_set():
            try:
                execution = await self.poll_once()
                while execution is not None and not stop.is_set():
                    execution = await self.run_execution(execution)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.stats.error(f"poll {type(exc).__name__}")
                await asyncio.sleep(0.5)

    async def heartbeat_loop(self, stop: asyncio.Event, first_delay: float) -> None:
        await asyncio.sleep(first_delay)
        while not stop.is_set():
            try:
                await self.heartbeat()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.stats.error(f"heartbeat {type(exc).__name__}")
            await asyncio.sleep(self.heartbeat_interval)


class RunnerFleet:
    """Many simulated runners in this event loop, started and stopped together."""

    def __init__(self, runners: list[SimRunner]) -> None:
        self.runners = runners
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, *, heartbeats: bool = False, ramp_seconds: float = 0.0, concurrency: int = 32) -> None:
        gate = asyncio.Semaphore(concurrency)
        count = len(self.runners)

        async def bring_up(i: int, runner: SimRunner) -> None:
            if ramp_seconds:
                await asyncio.sleep(ramp_seconds * i / max(1, count))
            while True:  # like the agent: retry sign-in until it works (1 s apart here)
                try:
                    async with gate:
                        await runner.auth()
                    break
                except (ApiError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    runner.stats.error(f"auth {type(exc).__name__}")
                    if self.stop_event.is_set():
                        return
                    await asyncio.sleep(1.0)
            if heartbeats:
                try:
                    await runner.heartbeat()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    runner.stats.error(f"heartbeat {type(exc).__name__}")
                phase = runner.heartbeat_interval * (i / max(1, count))
                self.tasks.append(asyncio.create_task(runner.heartbeat_loop(self.stop_event, phase)))
            self.tasks.append(asyncio.create_task(runner.work_loop(self.stop_event)))

        await asyncio.gather(*(bring_up(i, r) for i, r in enumerate(self.runners)))

    async def stop(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
