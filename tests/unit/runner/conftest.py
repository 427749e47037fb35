"""Fixtures for runner tests: a fake hub speaking the runner protocol in memory, and runner configs.

The fake hub is a FastAPI app served by uvicorn as a task on the test loop (same loop as the agent,
so its state needs no locking). It holds one runner's view of SPEC §7.3: auth with expiring tokens,
heartbeats, long polls, fenced start/logs/credentials/complete. It answers with the hub's own response models
and error hierarchy, so a change of the hub's protocol shapes shows up here.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

from exekra.hub.errors import Conflict, NotAuthenticated, NotFound, install_error_handlers
from exekra.hub.executions.models import ExecutionStatus
from exekra.hub.runners.models import RunnerStatus
from exekra.hub.runners.schemas import (
    CompleteAnswer,
    ExecutionStatusAnswer,
    HeartbeatAnswer,
    HeldExecution,
    LogsAnswer,
    PollAnswer,
    RunnerAuthAnswer,
    RunnerCredential,
    RunnerCredentialAnswer,
    VersionRef,
    WorkflowRef,
)
from exekra.runner.config import RunnerConfig
from exekra.runner.executor import Executor

FAKE_ENGINE = Path(__file__).with_name("runner_fake_engine.py")
FAKE_WORKER_COMMAND = (sys.executable, str(FAKE_ENGINE))
MACHINE_KEY = "mk-test"
MACHINE_SECRET = "ms-test-secret"


@dataclass
class FakeExecution:
    id: str
    definition: dict[str, Any]
    inputs: dict[str, Any]
    timeout_seconds: int | None
    status: str = "QUEUED"
    attempt: int = 0
    stop_via: str | None = None
    logs: list[dict[str, str]] = field(default_factory=list)
    result: dict[str, Any] | None = None

    def held(self) -> HeldExecution:
        """This execution as `poll` hands it over."""
        return HeldExecution(
            id=self.id,
            attempt=self.attempt,
            status=ExecutionStatus(self.status),
            workflow=WorkflowRef(id="wf-1", name="test workflow"),
            version=VersionRef(id="v-1", number=1, definition=self.definition),
            inputs=self.inputs,
            timeout_seconds=self.timeout_seconds,
        )

    def log_text(self) -> str:
        return "\n".join(line["message"] for line in self.logs)


class FakeHub:
    """In-memory runner-protocol hub; tests drive it and wait on its state with `wait_until`."""

    def __init__(
        self, *, token_ttl: float = 3600, long_poll: int = 1, intervals: float = 0.3, complete_takes_lines: bool = True
    ) -> None:
        self.complete_takes_lines = complete_takes_lines  # False: a hub from before `complete` carried log lines
        self.complete_hands_next = True  # False: a hub from before `complete` handed over the next execution
        self.machine_key = MACHINE_KEY
        self.machine_secret = MACHINE_SECRET
        self.token_ttl = token_ttl
        self.intervals = intervals
        self.long_poll = long_poll
        self.tokens: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.sequence: list[str] = []
        self.unauthorized = 0
        self.heartbeats: list[dict[str, Any]] = []
        self.auths: list[dict[str, Any]] = []
        self.catalogue_digest: str | None = None  # of the declaration this hub holds, as the hub's runner row
        self.executions: dict[str, FakeExecution] = {}
        self.queue: list[str] = []
        self.held: str | None = None  # the execution this (single) runner holds
        self.credentials: dict[str, dict[str, str]] = {}
        self._changed = asyncio.Event()
        self.app = self._build_app()

    # ----- driven by tests
    def enqueue(
        self,
        steps: list[dict[str, Any]] | None = None,
        *,
        definition: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        timeout: int | None = None,
    ) -> FakeExecution:
        """Queue an execution of the fake engine's `steps`, or of a real workflow `definition`."""
        definition = definition if definition is not None else {"steps": steps}
        execution = FakeExecution(f"ex-{len(self.executions) + 1}", definition, inputs or {}, timeout)
        self.executions[execution.id] = execution
        self.queue.append(execution.id)
        self._touch()
        return execution

    def hold_running(self, steps: list[dict[str, Any]]) -> FakeExecution:
        """An execution RUNNING on this runner, as if a previous runner process had started it."""
        execution = FakeExecution("ex-orphan", {"steps": steps}, {}, None, status="RUNNING", attempt=1)
        self.executions[execution.id] = execution
        self.held = execution.id
        return execution

    def request_stop(self, execution: FakeExecution, via: str) -> None:
        execution.stop_via = via

    def withdraw(self, execution: FakeExecution) -> None:
        """What the stale check does to a lost runner: the attempt is over; later calls get 409."""
        execution.status = "FAILED"
        self.held = None

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {within} s; calls: {dict(self.calls)}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _touch(self) -> None:
        self._changed.set()

    # ----- the protocol
    def _build_app(self) -> FastAPI:
        app = FastAPI()
        install_error_handlers(app)

        @app.middleware("http")
        async def count(request: Request, call_next: Any) -> Any:
            path = request.url.path
            name = "credential" if "/credentials/" in path else path.rsplit("/", 1)[-1]
            self.calls[name] += 1
            self.sequence.append(name)
            try:
                return await call_next(request)
            finally:
                self._touch()

        @app.post("/api/runner/auth")
        async def auth(body: dict[str, Any]) -> dict[str, Any]:
            if body.get("machineKey") != self.machine_key or body.get("machineSecret") != self.machine_secret:
                raise NotAuthenticated("invalid machine key or secret")
            token = secrets.token_hex(8)
            self.tokens.add(token)
            self.auths.append(body)
            self.catalogue_digest = (body.get("catalogue") or {}).get("digest")
            return _answer(
                RunnerAuthAnswer(
                    token=token,
                    expires_at=datetime.now(UTC) + timedelta(seconds=self.token_ttl),
                    runner_id="runner-1",
                    runner_name="hub-name",
                    heartbeat_interval_seconds=self.intervals,
                    poll_interval_seconds=self.intervals,
                    max_long_poll_seconds=self.long_poll,
                    report_interval_seconds=self.intervals,
                    artifact_max_bytes=50 * 1024 * 1024,
                    hub_version="test",
                    complete_takes_lines=self.complete_takes_lines,
                    complete_hands_next=self.complete_hands_next,
                )
            )

        @app.post("/api/runner/heartbeat")
        async def heartbeat(request: Request, body: dict[str, Any]) -> dict[str, Any]:
            self._authorize(request)
            self.heartbeats.append(body)
            if body.get("catalogue"):
                self.catalogue_digest = body["catalogue"].get("digest")
            stop = [e.id for e in self.executions.values() if e.stop_via == "heartbeat" and e.status == "RUNNING"]
            status = RunnerStatus.BUSY if self.held else RunnerStatus.ONLINE
            wanted = body.get("catalogueDigest") not in (None, self.catalogue_digest)
            return _answer(HeartbeatAnswer(status=status, stop_execution_ids=stop, catalogue_wanted=wanted))

        @app.get("/api/runner/poll", response_model=None)
        async def poll(request: Request, wait: int = 0) -> dict[str, Any] | Response:
            self._authorize(request)
            execution = await self._held_within(wait)
            return _answer(PollAnswer(execution=execution)) if execution is not None else Response(status_code=204)

        @app.post("/api/runner/executions/{execution_id}/start")
        async def start(request: Request, execution_id: str, body: dict[str, Any]) -> dict[str, Any]:
            execution = self._fenced(request, execution_id, body["attempt"], "ASSIGNED")
            execution.status = "RUNNING"
            return _answer(ExecutionStatusAnswer(status=ExecutionStatus.RUNNING))

        @app.post("/api/runner/executions/{execution_id}/logs")
        async def logs(request: Request, execution_id: str, body: dict[str, Any]) -> dict[str, Any]:
            execution = self._fenced(request, execution_id, body["attempt"], "RUNNING")
            execution.logs.extend(body["lines"])
            return _answer(LogsAnswer(stop_requested=execution.stop_via == "logs"))

        @app.get("/api/runner/executions/{execution_id}/credentials/{name}")
        async def credential(request: Request, execution_id: str, name: str, attempt: int) -> dict[str, Any]:
            self._fenced(request, execution_id, attempt, "RUNNING")
            if name not in self.credentials:
                raise NotFound(f"credential {name} not found")
            found = RunnerCredential(name=name, type="basic", fields=self.credentials[name])
            return _answer(RunnerCredentialAnswer(credential=found))

        @app.post("/api/runner/executions/{execution_id}/complete")
        async def complete(request: Request, execution_id: str, body: dict[str, Any]) -> dict[str, Any]:
            execution = self._fenced(request, execution_id, body["attempt"], "RUNNING")
            if self.complete_takes_lines:
                execution.logs.extend(body.get("lines") or [])
            execution.status, execution.result = body["status"], body
            self.held = None
            status = ExecutionStatus(body["status"])
            if not (self.complete_hands_next and body.get("takeNext")):
                return _answer(ExecutionStatusAnswer(status=status))
            # As the hub offers the freed runner the queue's work, and hands it over in the answer, or what it is
            # assigned within `wait` seconds.
            following = await self._held_within(float(body.get("wait") or 0))
            return _answer(CompleteAnswer(status=status, next=following))

        return app

    async def _held_within(self, wait: float) -> HeldExecution | None:
        """The execution this runner holds, or the queue's first, assigned to it, or one queued within `wait`
        seconds; None: none came."""
        deadline = time.monotonic() + wait
        while True:
            if self.held is None and self.queue:
                execution = self.executions[self.queue.pop(0)]
                execution.status, execution.attempt = "ASSIGNED", execution.attempt + 1
                self.held = execution.id
            if self.held is not None:
                return self.executions[self.held].held()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _authorize(self, request: Request) -> None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            self.unauthorized += 1
            raise NotAuthenticated("invalid or expired runner token")

    def _fenced(self, request: Request, execution_id: str, attempt: int, status: str) -> FakeExecution:
        self._authorize(request)
        execution = self.executions.get(execution_id)
        if execution is None:
            raise NotFound("no such execution")
        if execution.attempt != attempt or execution.status != status:
            raise Conflict(f"attempt {attempt} is stale or the execution is {execution.status}")
        return execution


def _answer(model: BaseModel) -> dict[str, Any]:
    """A protocol answer as the hub puts it on the wire (camelCase, JSON types)."""
    return model.model_dump(mode="json", by_alias=True)


class HubServer:
    """Serves a FakeHub on a fixed local port; can be stopped and started again (hub outage)."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)  # accepting from here on: no need to wait for uvicorn's start-up
        config = uvicorn.Config(self.hub.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]))

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 10)


@pytest.fixture
async def hub_server() -> AsyncIterator[HubServer]:
    server = HubServer(FakeHub())
    await server.start()
    yield server
    with contextlib.suppress(AssertionError):
        await server.stop()


@pytest.fixture
def hub(hub_server: HubServer) -> FakeHub:
    return hub_server.hub


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., RunnerConfig]:
    def make(hub_url: str = "http://127.0.0.1:9", **overrides: Any) -> RunnerConfig:
        values: dict[str, Any] = {
            "hub_url": hub_url,
            "machine_key": MACHINE_KEY,
            "machine_secret": MACHINE_SECRET,
            "workdir": tmp_path / "work",
            "sample_interval_seconds": 0.2,
            "backoff_base_seconds": 0.1,
            "backoff_max_seconds": 0.5,
            **overrides,
        }
        return RunnerConfig(**values)

    return make


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Any:
    """Every test must stop every process it started (workers and whatever they spawned).

    Processes already running before the test (the session's database and Redis servers) are not its own.
    """
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    children = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    _, alive = psutil.wait_procs(children, timeout=3)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left running: {[p.cmdline() for p in alive]}"


@pytest.fixture
async def make_executor() -> AsyncIterator[Callable[..., Executor]]:
    """Executors running the fake engine through the real worker; their idle workers are dismissed."""
    made: list[Executor] = []

    def make(config: RunnerConfig, **options: Any) -> Executor:
        executor = Executor(config, worker_command=FAKE_WORKER_COMMAND, **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        await executor.aclose()


@pytest.fixture
def alive() -> Callable[[int], bool]:
    """`alive(pid)`: True while the process runs (zombies count as gone)."""

    def check(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return check
