"""The hub's dispatcher: the Redis queue while Redis answers, direct assignment from PostgreSQL otherwise.

Redis failures are detected within a second: any failed command switches at once, and a probe asks Redis
every `PROBE_INTERVAL_SECONDS` (bounded by `EXEKRA_REDIS_TIMEOUT_SECONDS`) whether it is still the server
whose queue was reconciled (a restart that lost the data also sends the hub through reconciliation). API requests never fail
because of Redis: every call that meets a failure is served by direct assignment instead. When Redis
answers again, the queue is reconciled with PostgreSQL before and after switching back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub import collector
from exekra.hub.concurrency import Group
from exekra.hub.dispatch import wakeups
from exekra.hub.dispatch.direct import DirectDispatcher
from exekra.hub.dispatch.handed import Handed
from exekra.hub.dispatch.matcher import Matcher
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.dispatch.queue import QueueUnavailable, RedisQueue
from exekra.hub.dispatch.redis_dispatcher import RedisDispatcher
from exekra.hub.dispatch.wakeups import Wakeups
from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.lifecycle import Assignment
from exekra.hub.listener import Listener
from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 0.25
STARTUP_RECOVERY_SECONDS = 10.0
RECOVERY_RETRY_SECONDS = 2.0
REDIS = "redis"
DIRECT = "direct"
TIMEOUTS = (TimeoutError, RedisTimeout)


class SwitchingDispatcher:
    """Implements `Dispatcher` (and the duplicate-detection mirror) over whichever mode is active.

    `mode` is "redis" or "direct" (shown by GET /api/health); `mode_changes` counts switches.
    Without `REDIS_URL` the mode is always "direct".
    """

    def __init__(self, db: Database, settings: Settings, listener: Listener) -> None:
        self.wakeups = Wakeups(listener, db)
        matcher = Matcher(db)
        self.direct = DirectDispatcher(matcher)
        self.queue: RedisQueue | None = None
        self.redis: RedisDispatcher | None = None
        if settings.redis_url:
            self.queue = RedisQueue(
                settings.redis_url,
                timeout=settings.redis_timeout_seconds,
                keep_completed=settings.queue_keep_completed,
                keep_failed=settings.queue_keep_failed,
                on_error=self._redis_failed,
            )
            self.redis = RedisDispatcher(
                self.queue,
                matcher,
                self.wakeups,
                fallback=self.direct.execution_queued,
                concurrency=settings.queue_concurrency,
                attempts=settings.queue_attempts,
                reconcile_interval=settings.queue_reconcile_seconds,
            )
        self.redis_url = settings.redis_url or ""
        self.timeout = settings.redis_timeout_seconds
        self.mode = DIRECT
        self.mode_changes = 0
        self._identity = ""  # of the Redis server whose queue was last reconciled
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.direct.start()
        self._tasks.append(asyncio.create_task(self.wakeups.count_hearers(), name="exekra-wakeup-hearers"))
        if self.redis is None:
            return
        await self.redis.start()
        self._tasks.append(
            asyncio.create_task(self.wakeups.hear_redis(self.redis_url, self.timeout), name="exekra-wakeups")
        )
        try:  # a hub with a healthy Redis starts in Redis mode
            await asyncio.wait_for(self._recover(), STARTUP_RECOVERY_SECONDS)
        except (QueueUnavailable, *TRANSIENT_ERRORS) as exc:
            log.warning("starting in direct mode: %s: %s", type(exc).__name__, exc)
        self._tasks.append(asyncio.create_task(self._probe_forever(), name="exekra-redis-probe"))

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks = []
        if self.redis is not None:
            await self.redis.stop()
        await self.direct.stop()
        if self.queue is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(self.queue.close(), 2)

    def _redis(self) -> RedisDispatcher | None:
        return self.redis if self.mode == REDIS else None

    async def execution_queued(self, execution_id: uuid.UUID, *, claim_now: bool = False) -> None:
        redis = self._redis()
        if redis is not None:
            await redis.execution_queued(execution_id, claim_now=claim_now)
        else:
            await self.direct.execution_queued(execution_id)

    async def execution_unqueued(self, execution_id: uuid.UUID, status: str) -> None:
        redis = self._redis()
        if redis is not None:
            with contextlib.suppress(QueueUnavailable):
                await redis.execution_unqueued(execution_id, status)

    async def slot_freed(self, group: Group) -> None:
        redis = self._redis()
        if redis is not None:
            with contextlib.suppress(QueueUnavailable):
                return await redis.slot_freed(group)
        await self.direct.slot_freed(group)

    async def execution_assigned(
        self, execution_id: uuid.UUID, runner_id: uuid.UUID, handed: Handed | None = None
    ) -> None:
        elsewhere = not self.wakeups.is_waiting(runner_id)  # the runner's poll may wait in another hub process
        self.wakeups.notify(runner_id, handed)  # first: the runner's answer never waits on Redis
        if self._redis() is not None and self.queue is not None:
            announce = (wakeups.CHANNEL, self.wakeups.payload(runner_id, handed)) if elsewhere else None
            with contextlib.suppress(QueueUnavailable):
                heard = await self.queue.mark_assigned(execution_id, runner_id, announce)
                if heard >= self.wakeups.hearers:
                    return  # every hub process heard it (or nobody needed to)
        if elsewhere:
            await self.wakeups.notify_by_postgres(runner_id)

    async def runner_idle(self, runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        redis = self._redis()
        if redis is not None:
            with contextlib.suppress(QueueUnavailable):
                return await redis.runner_idle(runner_id, profile)
        return await self.direct.runner_idle(runner_id)

    async def dispatch_pending(self) -> int:
        redis = self._redis()
        if redis is not None:
            with contextlib.suppress(QueueUnavailable):
                return await redis.dispatch_pending()
        return await self.direct.dispatch_pending()

    async def find_duplicate(self, workflow_id: uuid.UUID, key: str) -> uuid.UUID | None:
        """The execution the Redis mirror holds for an idempotency key, if Redis is up and has it."""
        if self._redis() is None or self.queue is None:
            return None
        try:
            return await self.queue.find_duplicate(workflow_id, key)
        except QueueUnavailable:
            return None

    async def remember_duplicate(
        self, workflow_id: uuid.UUID, key: str, execution_id: uuid.UUID, seconds: float
    ) -> None:
        """Mirror a new idempotency key in Redis for `seconds` (best effort)."""
        if self._redis() is None or self.queue is None:
            return
        with contextlib.suppress(QueueUnavailable):
            await self.queue.remember_duplicate(workflow_id, key, execution_id, seconds)

    def _redis_failed(self, exc: Exception) -> None:
        if isinstance(exc, TIMEOUTS) and collector.stood_still(at_least=self.timeout / 2, within=self.timeout):
            # The process stood still (a long garbage collection) for most of the command's time, not Redis: the
            # command fails (Redis may have carried it out: the reconciliation repairs the queue) and its caller
            # falls back; the mode stays. A Redis really gone fails the next command, or the probe.
            log.info("a Redis command timed out while the process stood still for garbage collection: %s", exc)
            return
        self._switch(DIRECT, f"Redis unavailable ({type(exc).__name__}: {exc})")

    def _switch(self, mode: str, reason: str) -> None:
        if mode == self.mode:
            return
        self.mode = mode
        self.mode_changes += 1
        self.direct.active = mode == DIRECT
        if self.redis is not None:
            self.redis.active = mode == REDIS
        if mode == DIRECT:
            log.warning("queue mode: direct (%s)", reason)
            self.direct.sweeper.poke()  # take over whatever was waiting in Redis
        else:
            log.info("queue mode: redis (%s)", reason)

    async def _recover(self) -> None:
        """Redis answers: reconcile, switch back, then reconcile what direct mode changed meanwhile."""
        assert self.queue is not None and self.redis is not None
        await self.queue.reset()
        identity = await self.queue.mark()
        first = await self.redis.reconcile()
        self._switch(REDIS, f"Redis available; {first.enqueued} executions enqueued, {first.dropped} dropped")
        second = await self.redis.reconcile()
        if second.enqueued or second.dropped:
            log.info("queue reconciled after the switch: %d enqueued, %d dropped", second.enqueued, second.dropped)
        self._identity = identity
        self.redis.sweeper.poke()

    async def _probe(self) -> None:
        """In Redis mode: is it still the server whose queue was reconciled? Else: try to switch back."""
        assert self.queue is not None
        if self.mode == DIRECT:
            await self._recover()
        elif await self.queue.identity() != self._identity:
            self._switch(DIRECT, "Redis restarted or lost the queue's data; reconciling")

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
            try:
                await self._probe()
            except QueueUnavailable:
                pass  # already in direct mode, or just switched to it
            except TRANSIENT_ERRORS as exc:  # PostgreSQL trouble while reconciling: try again a little later
                log.warning("queue recovery failed (%s: %s); retrying", type(exc).__name__, exc)
                await asyncio.sleep(RECOVERY_RETRY_SECONDS)
