"""Per-client rate limiting (SPEC §10.3) on the `limits` library.

Counters live in Redis when it answers and in process memory when it does not; a Redis failure
costs one short timeout, then memory is used for a few seconds before Redis is tried again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from exekra.hub.redis_client import redis_client

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5.0
MAX_CONNECTIONS = 32  # one per request being counted at the same moment; more wait up to the timeout
T = TypeVar("T")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    @property
    def retry_after(self) -> int:
        return max(1, int(self.reset_at - time.time() + 0.999))

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(int(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    """Sliding-window counters keyed by bucket and client."""

    def __init__(self, redis_url: str | None, timeout_seconds: float) -> None:
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._redis: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            # The hub's own client (Sentinel, TLS and all), handed to `limits` as a connection pool: `limits` then
            # neither parses the URL nor makes connections of its own.
            client = redis_client(
                redis_url, timeout=timeout_seconds, max_connections=MAX_CONNECTIONS, pool_wait=timeout_seconds
            )
            pool: dict[str, Any] = {"connection_pool": client.connection_pool}  # typed by `limits` as a plain option
            storage: Storage = RedisStorage(
                "async+redis://", implementation="redispy", key_prefix="exekra:rl", wrap_exceptions=True, **pool
            )
            self._redis = SlidingWindowCounterRateLimiter(storage)
        self._redis_down_until = 0.0

    def _strategies(self) -> list[SlidingWindowCounterRateLimiter]:
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            return [self._redis, self._memory]
        return [self._memory]

    async def _first_answering(self, use: Callable[[SlidingWindowCounterRateLimiter], Awaitable[T]]) -> T:
        """`use` on Redis, or on memory when Redis fails (then memory alone for a few seconds)."""
        for strategy in self._strategies():
            try:
                return await use(strategy)
            except Exception as exc:  # any storage failure: fall back to memory
                if strategy is self._memory:
                    raise
                log.warning("rate limiter: Redis unavailable (%s), counting in memory", exc)
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        raise AssertionError("unreachable")

    async def hit(self, bucket: str, client: str, per_minute: int) -> Decision:
        """Count one request of `client` in `bucket` and say whether it is allowed."""
        return await self.acquire(bucket, client, RateLimitItemPerMinute(per_minute))

    async def acquire(self, bucket: str, client: str, item: RateLimitItem) -> Decision:
        """Count one hit of `client` in `bucket` against `item` (any window) and say whether it is allowed; a
        refused hit is not counted."""

        async def use(strategy: SlidingWindowCounterRateLimiter) -> Decision:
            allowed = await strategy.hit(item, bucket, client)
            stats = await strategy.get_window_stats(item, bucket, client)
            return Decision(allowed, item.amount, stats.remaining, stats.reset_time)

        return await self._first_answering(use)

    async def refund(self, bucket: str, client: str, item: RateLimitItem) -> None:
        """Take back one counted hit: a hit of cost -1, which the sliding window counter subtracts."""

        async def use(strategy: SlidingWindowCounterRateLimiter) -> bool:
            return await strategy.hit(item, bucket, client, cost=-1)

        await self._first_answering(use)

    async def peek_exceeded(self, bucket: str, client: str, per_minute: int) -> Decision | None:
        """The decision if `client` is already over the limit in `bucket`, without counting a hit."""
        item = RateLimitItemPerMinute(per_minute)
        strategy = self._strategies()[0]
        try:
            if await strategy.test(item, bucket, client):
                return None
            stats = await strategy.get_window_stats(item, bucket, client)
        except Exception:
            return None
        return Decision(False, per_minute, stats.remaining, stats.reset_time)
