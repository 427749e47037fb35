"""Per-client rate limiting (SPEC §10.3): sliding window counters, one Redis round trip per counted request.

The counter is the `limits` library's sliding window counter: a window's count and the previous window's, the
previous one weighted by how much of it still overlaps the sliding window. In Redis, `SLIDING_WINDOW` shifts,
counts and answers in one script (`EVALSHA`), with `limits`' keys and arithmetic; `limits` itself needs two
round trips (a hit, then the window's stats for the headers). In process memory, when Redis does not answer,
`limits`' own memory storage keeps the same pair of counters. A Redis failure costs one short timeout, then
memory is used for a few seconds before Redis is tried again.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from redis.commands.core import AsyncScript

from exekra.hub.redis_client import redis_client

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5.0
MAX_CONNECTIONS = 32  # one per request being counted at the same moment; more wait up to the timeout
KEY_PREFIX = "exekra:rl"

# KEYS: the previous window's counter, the current window's counter
# ARGV: limit, window in ms, amount (1: a hit; -1: a refund, always taken; 0: a look, nothing counted)
# Returns {allowed (1/0: a hit fits and was counted; 1 for a refund or a look), previous count, previous TTL ms,
# current count, current TTL ms}, the counts as they are after the change. The current counter lives two windows;
# once less than one is left, it becomes the previous one (as in `limits`' own scripts, so the keys carry over).
SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local current_ttl = redis.call('PTTL', KEYS[2])
if current_ttl > 0 and current_ttl < expiry then
  redis.call('RENAME', KEYS[2], KEYS[1])
  redis.call('SET', KEYS[2], 0, 'PX', current_ttl + expiry)
end
local previous_count = tonumber(redis.call('GET', KEYS[1])) or 0
local previous_ttl = math.max(redis.call('PTTL', KEYS[1]), 0)
local current_count = tonumber(redis.call('GET', KEYS[2])) or 0
current_ttl = math.max(redis.call('PTTL', KEYS[2]), 0)
local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
local allowed = amount <= 0 or weighted + amount <= limit
if amount ~= 0 and allowed then
  if current_ttl > 0 then
    current_count = redis.call('INCRBY', KEYS[2], amount)
  else
    redis.call('SET', KEYS[2], amount, 'PX', expiry * 2)
    current_count, current_ttl = amount, expiry * 2
  end
end
return {allowed and 1 or 0, previous_count, previous_ttl, current_count, current_ttl}
"""


class Window(NamedTuple):
    """A sliding window's two counters after a hit, a refund or a look (TTLs in seconds)."""

    previous_count: int
    previous_ttl: float
    current_count: int
    current_ttl: float


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


def decide(item: RateLimitItem, allowed: bool, window: Window) -> Decision:
    """The decision and its headers from the window's counters: `limits`' arithmetic (the weighted count, and the
    reset as the moment the next unit of the previous window or the current window expires)."""
    expiry = item.get_expiry()
    weighted = window.previous_count * window.previous_ttl / expiry + window.current_count
    remaining = max(0, item.amount - math.floor(weighted))
    now = time.time()
    reset_in = math.inf
    if window.previous_count > 0:
        reset_in = window.previous_ttl % (expiry / window.previous_count)
    if window.current_count > 0:
        reset_in = min(reset_in, window.current_ttl % expiry)
    return Decision(allowed, item.amount, remaining, now if reset_in == math.inf else now + reset_in)


class RateLimiter:
    """Sliding-window counters keyed by bucket and client."""

    def __init__(self, redis_url: str | None, timeout_seconds: float) -> None:
        self._memory = MemoryStorage()
        self._script: AsyncScript | None = None
        if redis_url:
            # The hub's own client (Sentinel, TLS and all); the script is sent once and then run by its hash.
            client = redis_client(
                redis_url, timeout=timeout_seconds, max_connections=MAX_CONNECTIONS, pool_wait=timeout_seconds
            )
            self._script = client.register_script(SLIDING_WINDOW)
        self._redis_down_until = 0.0

    async def _count(self, item: RateLimitItem, key: str, amount: int) -> Decision:
        """Count `amount` against `item` for `key` (-1: give one back; 0: only look) in Redis, else in memory."""
        if self._script is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self._count_in_redis(item, key, amount)
            except Exception as exc:  # any Redis failure: count in memory
                log.warning("rate limiter: Redis unavailable (%s), counting in memory", exc)
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return await self._count_in_memory(item, key, amount)

    async def _count_in_redis(self, item: RateLimitItem, key: str, amount: int) -> Decision:
        assert self._script is not None
        current = f"{KEY_PREFIX}:{{{key}}}"  # `limits`' keys: the same counters across an upgrade
        keys = [f"{current}/-1", current]
        answer = await self._script(keys=keys, args=[item.amount, item.get_expiry() * 1000, amount])
        allowed, previous_count, previous_ttl, current_count, current_ttl = (int(v) for v in answer)
        window = Window(previous_count, previous_ttl / 1000, current_count, current_ttl / 1000)
        return decide(item, bool(allowed), window)

    async def _count_in_memory(self, item: RateLimitItem, key: str, amount: int) -> Decision:
        expiry = item.get_expiry()
        allowed = True
        if amount:
            allowed = await self._memory.acquire_sliding_window_entry(key, item.amount, expiry, amount)
        return decide(item, allowed, Window(*await self._memory.get_sliding_window(key, expiry)))

    async def hit(self, bucket: str, client: str, per_minute: int) -> Decision:
        """Count one request of `client` in `bucket` and say whether it is allowed."""
        return await self.acquire(bucket, client, RateLimitItemPerMinute(per_minute))

    async def acquire(self, bucket: str, client: str, item: RateLimitItem) -> Decision:
        """Count one hit of `client` in `bucket` against `item` (any window) and say whether it is allowed; a
        refused hit is not counted."""
        return await self._count(item, item.key_for(bucket, client), 1)

    async def refund(self, bucket: str, client: str, item: RateLimitItem) -> None:
        """Take back one counted hit."""
        await self._count(item, item.key_for(bucket, client), -1)

    async def peek_exceeded(self, bucket: str, client: str, per_minute: int) -> Decision | None:
        """The decision if `client` is already over the limit in `bucket`, without counting a hit."""
        item = RateLimitItemPerMinute(per_minute)
        looked = await self._count(item, item.key_for(bucket, client), 0)
        return None if looked.remaining > 0 else Decision(False, per_minute, looked.remaining, looked.reset_at)
