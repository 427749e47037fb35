"""The runner agent: session upkeep, heartbeats and the poll → execute → report loop.

Three tasks share one `HubSession`: `maintain` (auth and renewal), the heartbeat loop, and the work loop.
The work loop long-polls for one execution, runs it with the `Executor` (polling pauses meanwhile) and
reports the outcome. A hub that hands the runner its next execution in the report's answer (`completeHandsNext`)
saves it the poll: that execution is run at once, and the report waits a few seconds for one as a long poll
would. Nothing survives between executions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from exekra.runner.artifacts import ArtifactFile
from exekra.runner.client import Conflict, HubClient, Rejected
from exekra.runner.config import RunnerConfig
from exekra.runner.executor import ExecutionAbandoned, Executor, Job, Outcome
from exekra.runner.metrics import prime_cpu_percent, system_metrics
from exekra.runner.session import HubSession
from exekra.workflow import hubcalls
from exekra.workflow.catalogue import RunnerCatalogue, runner_catalogue
from exekra.workflow.definition import referenced_credentials
from exekra.workflow.scope import ActivitySettings

logger = logging.getLogger("exekra.runner")
T = TypeVar("T")
SHUTDOWN_GRACE_SECONDS = 15.0
# How long a report (`complete`) waits for the next execution when none is assigned at once: short, since a shutdown
# waits for the report's answer (it cannot cut it short without losing the report); the long poll after it waits
# the hub's full time.
REPORT_WAIT_SECONDS = 5.0


class _RunnerLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"runner {self.extra['name'] if self.extra else ''}: {msg}", kwargs


@dataclass
class _Current:
    execution_id: str
    attempt: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class RunnerAgent:
    """One runner: one execution slot, talking to the hub over outbound HTTP(S) only."""

    def __init__(
        self,
        config: RunnerConfig,
        *,
        executor: Executor | None = None,
        shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
    ) -> None:
        self._config = config
        self._log = _RunnerLog(logger, {"name": config.name})
        self._client = HubClient(config)
        self._session = HubSession(self._client, config, self._log, self.catalogue)
        self._executor = executor or Executor(config)
        self._shutdown_grace = shutdown_grace_seconds
        self._shutdown = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early_shutdown = False
        self._work: asyncio.Task[None] | None = None
        self._current: _Current | None = None
        self._catalogue: asyncio.Task[RunnerCatalogue] | None = None

    @property
    def current_execution_id(self) -> str | None:
        """The execution being run right now, if any."""
        return self._current.execution_id if self._current else None

    def request_shutdown(self) -> None:
        """Stop taking work; stop the running execution (reported STOPPED); let `run()` return.

        Safe from signal handlers and other threads. A second request abandons the graceful path.
        """
        if self._loop is None:
            self._early_shutdown = True
            return
        self._loop.call_soon_threadsafe(self._begin_shutdown)

    def _begin_shutdown(self) -> None:
        if self._shutdown.is_set():
            self._log.warning("second shutdown request: exiting now")
            if self._work is not None:
                self._work.cancel()
            return
        self._log.info("shutting down: taking no new work")
        self._shutdown.set()
        if self._current is not None:
            self._current.stop.set()

    async def run(self) -> None:
        """Run until shutdown is requested; raises if one of the agent's loops fails unexpectedly."""
        self._loop = asyncio.get_running_loop()
        if self._early_shutdown:
            self._shutdown.set()
        await asyncio.to_thread(self._config.work_root.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(prime_cpu_percent)
        self._log.info("starting (hub %s, workdir %s)", self._config.hub_url, self._config.work_root)
        self._catalogue = asyncio.create_task(self._declare())
        self._executor.prestart()
        background = [asyncio.create_task(self._session.maintain()), asyncio.create_task(self._heartbeat_loop())]
        self._work = asyncio.create_task(self._work_loop())
        shutdown = asyncio.create_task(self._shutdown.wait())
        try:
            await asyncio.wait({self._work, shutdown, *background}, return_when=asyncio.FIRST_COMPLETED)
            if not self._work.done() and shutdown.done():
                # Let the running execution be stopped and reported; a second signal cancels the work.
                done, _ = await asyncio.wait({self._work}, timeout=self._shutdown_grace)
                if not done:
                    self._log.warning("could not finish reporting within %g s; exiting", self._shutdown_grace)
        finally:
            helpers = [shutdown, *background, *([self._catalogue] if self._catalogue else [])]
            for task in (self._work, *helpers):
                task.cancel()
            await asyncio.gather(self._work, *helpers, return_exceptions=True)
            await self._executor.aclose()
            await self._client.aclose()
        failures = [t.exception() for t in (self._work, *background) if not t.cancelled() and t.exception()]
        if failures:
            raise failures[0]  # type: ignore[misc]
        self._log.info("stopped")

    async def catalogue(self) -> RunnerCatalogue:
        """What this runner can run: its capabilities and activities (worked out once, in the background)."""
        if self._catalogue is None:
            self._catalogue = asyncio.create_task(self._declare())
        return await asyncio.shield(self._catalogue)

    async def _declare(self) -> RunnerCatalogue:
        settings = ActivitySettings(chromium=self._config.chromium)
        declared = await asyncio.to_thread(runner_catalogue, settings)
        capabilities = ", ".join(declared.capabilities) or "none"
        self._log.info("%d activities; capabilities: %s", len(declared.activities), capabilities)
        return declared

    async def _heartbeat_loop(self) -> None:
        resend = False  # the hub asked for our catalogue: it holds another one (or none)
        while True:
            info = await self._session.wait_online()
            metrics = await asyncio.to_thread(system_metrics, self._config.work_root)
            declared = await self.catalogue()
            heartbeat = partial(
                self._client.heartbeat, metrics, self.current_execution_id, declared, resend_catalogue=resend
            )
            try:
                reply = await self._session.call(heartbeat)
            except Rejected as exc:
                self._log.warning("hub refused a heartbeat (%s)", exc.message)
            else:
                current = self._current
                if current is not None and current.execution_id in reply.stop_execution_ids:
                    self._log.info("hub asked to stop execution %s", current.execution_id)
                    current.stop.set()
                if reply.catalogue_wanted and not resend:
                    self._log.info("hub asked for this runner's catalogue: sending it")
                    resend = True
                    continue  # at once, once: a hub that still asks after that waits for the next beat
                resend = False
            await asyncio.sleep(info.heartbeat_interval)

    async def _work_loop(self) -> None:
        while not self._shutdown.is_set():
            info = await self._unless_shutdown(self._session.wait_online())
            if info is None:
                return
            began = time.monotonic()
            try:
                execution = await self._unless_shutdown(
                    self._session.call(partial(self._client.poll, info.max_long_poll))
                )
            except Rejected as exc:
                self._log.warning("hub refused a poll (%s)", exc.message)
                execution = None
            if self._shutdown.is_set():
                return
            if execution is not None:
                while execution is not None and not self._shutdown.is_set():
                    execution = await self._handle(execution)
                if execution is not None:  # handed over by the report that a shutdown waited for
                    self._log.warning("shutting down: execution %s not started; the hub re-queues it", execution["id"])
            elif info.max_long_poll <= 0 or time.monotonic() - began < info.max_long_poll / 2:
                # Interval polling, or a hub that did not hold the request: do not spin.
                await self._unless_shutdown(asyncio.sleep(info.poll_interval))

    async def _unless_shutdown(self, awaitable: Awaitable[T]) -> T | None:
        """Await `awaitable`, or cancel it and return None as soon as shutdown is requested."""
        task = asyncio.ensure_future(awaitable)
        waiter = asyncio.create_task(self._shutdown.wait())
        try:
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return task.result() if task in done else None

    async def _handle(self, execution: dict[str, Any]) -> dict[str, Any] | None:
        """Run the execution and report it; the next one, if the report's answer handed it over."""
        current = _Current(str(execution["id"]), int(execution["attempt"]))
        if execution.get("status") == "RUNNING":
            # We run nothing between polls, so a RUNNING execution is one a previous life of ours started.
            self._log.warning("execution %s is RUNNING on the hub but not here: reporting FAILED", current.execution_id)
            return await self._complete(current, Outcome("FAILED", "runner restarted"))
        self._current = current
        try:
            return await self._execute(execution, current)
        except Exception as exc:
            self._log.exception("execution %s failed inside the runner", current.execution_id)
            return await self._complete(current, Outcome("FAILED", f"runner error: {type(exc).__name__}: {exc}"))
        finally:
            self._current = None

    async def _execute(self, execution: dict[str, Any], current: _Current) -> dict[str, Any] | None:
        execution_id, attempt = current.execution_id, current.attempt
        workflow = (execution.get("workflow") or {}).get("name", "?")
        self._log.info("picked up execution %s attempt %d (workflow %s)", execution_id, attempt, workflow)
        try:
            await self._session.call(partial(self._client.start, execution_id, attempt))
        except Rejected as exc:
            self._log.warning("hub refused to start execution %s (%s): dropping it", execution_id, exc.message)
            return None
        definition = execution["version"]["definition"]
        try:
            credentials = await self._fetch_credentials(current, definition)
        except Conflict as exc:
            self._log.warning("hub withdrew execution %s (%s): dropping it", execution_id, exc.message)
            return None
        except _CredentialProblem as exc:
            return await self._complete(current, Outcome("FAILED", str(exc)))
        job = Job(
            execution_id=execution_id,
            attempt=attempt,
            definition=definition,
            inputs=execution.get("inputs") or {},
            credentials=credentials,
            timeout_seconds=float(execution.get("timeoutSeconds") or 0) or None,
        )
        send_logs = partial(self._send_logs, current)
        try:
            info = self._session.info
            outcome = await self._executor.run(
                job,
                send_logs,
                stop=current.stop,
                report_interval=info.report_interval,
                lines_with_outcome=info.complete_takes_lines,
                send_artifact=partial(self._send_artifact, current),
                hub_calls=partial(self._hub_call, current),
            )
        except ExecutionAbandoned as exc:
            self._log.warning("hub no longer accepts execution %s (%s): killed it", execution_id, exc)
            return None
        return await self._complete(current, outcome)

    async def _send_logs(self, current: _Current, lines: list[dict[str, str]]) -> bool:
        return await self._session.call(partial(self._client.logs, current.execution_id, current.attempt, lines))

    async def _send_artifact(self, current: _Current, artifact: ArtifactFile) -> None:
        """Upload one file; one past the hub's limit is refused here as the hub would (413), unsent: a hub
        that refuses a body before reading it closes the connection under a client still sending it."""
        limit = self._session.info.artifact_max_bytes
        if limit is not None and artifact.size > limit:
            raise Rejected(f"413 the file has {artifact.size} bytes; the hub stores {limit} at most", status=413)
        await self._session.call(partial(self._client.upload_artifact, current.execution_id, current.attempt, artifact))

    async def _hub_call(self, current: _Current, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """One call the workflow makes to the hub (`exekra.workflow.hubcalls`), for the attempt this runner holds,
        retried through outages like every call (a repeated child start answers the child it started)."""
        client, execution_id, attempt = self._client, current.execution_id, current.attempt
        request: Callable[[], Awaitable[dict[str, Any]]]
        if op == hubcalls.START_CHILD:
            request = partial(client.start_child, execution_id, attempt, body)
        elif op == hubcalls.WAIT_FOR_CHILD:
            request = partial(client.child, execution_id, attempt, str(body.get("id")), float(body.get("wait") or 0))
        elif op == hubcalls.STOP_CHILD:
            request = partial(client.stop_child, execution_id, attempt, str(body.get("id")))
        else:
            raise Rejected(f"unknown call {op!r}")
        return await self._session.call(request)

    async def _fetch_credentials(self, current: _Current, definition: dict[str, Any]) -> dict[str, dict[str, str]]:
        try:
            names = referenced_credentials(definition)
        except Exception as exc:
            raise _CredentialProblem(f"invalid workflow definition: {exc}") from exc
        credentials = {}
        for name in sorted(names):
            fetch = partial(self._client.credential, current.execution_id, name, current.attempt)
            try:
                credential = await self._session.call(fetch)
            except Conflict:
                raise
            except Rejected as exc:
                raise _CredentialProblem(f"credential {name!r} is not available: {exc.message}") from exc
            credentials[name] = {str(k): v for k, v in (credential.get("fields") or {}).items()}
        return credentials

    async def _complete(self, current: _Current, outcome: Outcome) -> dict[str, Any] | None:
        """Report the outcome; the next execution the hub handed over in its answer, if it did (none is asked for
        while shutting down: the runner takes no new work)."""
        report = partial(
            self._client.complete,
            current.execution_id,
            current.attempt,
            outcome.status,
            outcome.error,
            outcome.outputs,
            outcome.metrics.to_api(),
            list(outcome.lines),
            self._session.info.complete_hands_next and not self._shutdown.is_set(),
            min(self._session.info.max_long_poll, REPORT_WAIT_SECONDS),
        )
        try:
            following = await self._session.call(report)
        except Conflict as exc:
            self._log.warning("hub no longer expects a result for %s (%s)", current.execution_id, exc.message)
            return None
        except Rejected as exc:
            if outcome.outputs is None:
                self._log.error("hub refused the result of %s (%s)", current.execution_id, exc.message)
                return None
            self._log.warning("hub refused the outputs of %s (%s): reporting FAILED", current.execution_id, exc.message)
            refused = Outcome("FAILED", f"outputs refused by the hub: {exc.message}", lines=outcome.lines)
            return await self._complete(current, refused)
        suffix = f": {outcome.error}" if outcome.error else ""
        self._log.info("execution %s %s%s", current.execution_id, outcome.status, suffix)
        return following


class _CredentialProblem(Exception):
    """The execution cannot run because a credential is missing or the definition is unreadable."""


def main(config: RunnerConfig) -> int:
    """Run a runner agent until SIGINT/SIGTERM (graceful: the running execution is stopped and reported).

    Uses uvloop when it is installed. Returns 0 after a clean shutdown, 1 if the agent failed.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    agent = RunnerAgent(config)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(agent))
    except Exception:
        logger.exception("runner agent failed")
        return 1
    return 0


async def _serve(agent: RunnerAgent) -> None:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, agent.request_shutdown)
    try:
        await agent.run()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
