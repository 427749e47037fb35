"""The runner's authenticated session with the hub, and the one retry policy for every hub call.

`maintain()` runs for the agent's lifetime: it authenticates, renews the token at 80 % of its lifetime,
and after a failure retries with exponential backoff and jitter (base doubling up to the cap). `call()`
wraps every other request: it waits while the session is down, and on a connection error or a 401 hands
the problem to `maintain()` and retries once the session is back. Each state change is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from exekra.runner.client import AuthInfo, HubClient, HubUnavailable, RateLimited, Rejected, Unauthorized
from exekra.runner.config import RunnerConfig
from exekra.workflow.catalogue import RunnerCatalogue

T = TypeVar("T")


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after `failures` consecutive failures: base·2^(n-1) capped, ±20 % jitter; 0 for n=0."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2.0 ** (failures - 1)) * random.uniform(0.8, 1.2)


class HubSession:
    """Owns the runner token and the connected/disconnected state shared by all agent tasks."""

    def __init__(
        self,
        client: HubClient,
        config: RunnerConfig,
        log: logging.LoggerAdapter[Any],
        catalogue: Callable[[], Awaitable[RunnerCatalogue]] | None = None,
    ) -> None:
        self._client = client
        self._catalogue = catalogue  # what each `auth` declares (worked out once, before the first one)
        self._config = config
        self._log = log
        self._info: AuthInfo | None = None
        self._online = asyncio.Event()
        self._lost = asyncio.Event()
        self._generation = 0  # bumped on every successful auth: tells stale failures from fresh ones
        self._failures = 0  # since the last successful call; decides the backoff
        self._problem: str | None = "not connected yet"

    @property
    def info(self) -> AuthInfo:
        """The latest `auth` answer (only valid once `wait_online()` has returned)."""
        if self._info is None:
            raise RuntimeError("not authenticated yet")
        return self._info

    async def wait_online(self) -> AuthInfo:
        """Wait until the runner holds a valid token."""
        await self._online.wait()
        return self.info

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one hub request, retrying through outages and re-authentication until it gets an answer.

        Raises only `Rejected` (including `Conflict`): answers that retrying cannot change.
        """
        while True:
            await self._online.wait()
            generation = self._generation
            try:
                result = await operation()
            except HubUnavailable as exc:
                self._lose(generation, "unreachable", f"hub unreachable, retrying ({exc.message})")
            except Unauthorized as exc:
                self._lose(generation, "token", f"hub rejected the runner token, re-authenticating ({exc.message})")
            except RateLimited as exc:
                await asyncio.sleep(min(exc.retry_after, self._config.backoff_max_seconds))
            else:
                self._failures = 0
                return result

    def _lose(self, generation: int, problem: str, message: str) -> None:
        if generation != self._generation or not self._online.is_set():
            return  # another task already reported this session as lost
        self._report(problem, message)
        self._failures += 1
        self._online.clear()
        self._lost.set()

    async def maintain(self) -> None:
        """Authenticate, renew, and re-authenticate after failures, forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self._delay())
            declared = await self._catalogue() if self._catalogue is not None else None
            try:
                info = await self._client.auth(declared)
            except RateLimited as exc:
                self._failed("throttled", f"hub is throttling authentication, retrying in {exc.retry_after:g} s")
                await asyncio.sleep(exc.retry_after)
                continue
            except Unauthorized as exc:
                self._failed("rejected", f"hub rejected the machine key or secret ({exc.message}), retrying")
                continue
            except Rejected as exc:
                self._failed("refused", f"hub refused authentication ({exc.message}), retrying")
                continue
            except HubUnavailable as exc:
                self._failed("unreachable", f"hub unreachable, retrying ({exc.message})")
                continue
            self._connected(info)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), info.renew_after())

    def _delay(self) -> float:
        return backoff_delay(self._failures, self._config.backoff_base_seconds, self._config.backoff_max_seconds)

    def _failed(self, problem: str, message: str) -> None:
        self._report(problem, message)
        self._failures += 1
        self._online.clear()

    def _report(self, problem: str, message: str) -> None:
        """Log a problem only when it differs from the one already reported: one line per state change."""
        if problem != self._problem:
            self._log.warning(message)
            self._problem = problem

    def _connected(self, info: AuthInfo) -> None:
        self._info = info
        self._generation += 1
        self._lost.clear()
        self._online.set()
        if info.runner_name and self._log.extra is not None:
            self._log.extra["name"] = info.runner_name  # type: ignore[index]  # log under the hub's name from now on
        if self._problem is not None:
            self._log.info("connected to hub %s as runner %s", self._config.hub_url, info.runner_id)
            self._problem = None
        else:
            self._log.debug("runner token renewed")
