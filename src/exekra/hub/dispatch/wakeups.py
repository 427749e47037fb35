"""Long-poll wake-ups: a runner's pending poll wakes the moment work is assigned to it, in any hub process.

The process that makes an assignment wakes its own waiting polls directly, after the commit. The other hub
processes hear of it on `CHANNEL`, announced once the claim has committed:

- while the queue is in Redis mode, by Redis pub/sub, sent by the script that records the assignment in the
  queue (`RedisQueue.mark_assigned`): no round trip of its own, and no work for PostgreSQL;
- otherwise by a PostgreSQL `NOTIFY`. PostgreSQL makes every listening backend read each notification in a
  transaction of its own, whatever its channel, so each one costs a transaction per hub process
  (bench/RESULTS.md, 2026-12-04 15:04): this is why Redis carries them when it can. The `NOTIFY` is also sent
  when the script fails, and when fewer processes received the publish than listen on PostgreSQL (`hearers`):
  a process cut off from Redis, or whose Redis user may not subscribe, still hears every wake-up.

Every process hears both: its `Listener` and a Redis subscription of its own (`hear_redis`). Each reconnects by
itself and then wakes every poll of its process, which looks again: what was sent while it was down is lost. A
hub that dies between the commit and the announcement leaves the runner's long poll to end by its own timeout:
its next poll finds the execution it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import text

from exekra.db.session import Database
from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.listener import APPLICATION_NAME, Listener
from exekra.hub.redis_client import redis_client
from exekra.hub.waiters import Waiters

log = logging.getLogger(__name__)

CHANNEL = "exekra_wakeup"
KEEPALIVE_SECONDS = 10.0  # a quiet subscription asks Redis this often whether the connection still works
RECONNECT_MAX_SECONDS = 1.0  # Redis mode resumes within a probe of Redis's return: what is published before the
# subscription is back reaches this process's polls when it resubscribes and wakes them all
HEARERS_SECONDS = 5.0  # how often the number of hub processes listening on PostgreSQL is counted
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_LISTENERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"
)


class Wakeups(Waiters):
    """This process's runners waiting in a long poll, by runner id."""

    def __init__(self, listener: Listener, db: Database) -> None:
        super().__init__()
        self.db = db
        self.origin = uuid.uuid4().hex  # tells this process's announcements from other processes'
        self.hearers = 1  # hub processes that must hear an announcement: those listening on PostgreSQL
        listener.subscribe(CHANNEL, self.deliver, on_connect=self.notify_all)

    def payload(self, runner_id: uuid.UUID) -> str:
        """What announces an assignment to `runner_id` to the other processes."""
        return f"{self.origin}:{runner_id}"

    async def notify_by_postgres(self, runner_id: uuid.UUID) -> None:
        """Announce an assignment that has committed to the other hub processes through PostgreSQL."""
        async with self.db.statement() as session:
            await session.execute(_NOTIFY, {"channel": CHANNEL, "payload": self.payload(runner_id)})

    def deliver(self, payload: str) -> None:
        """An announcement heard (from PostgreSQL or Redis): wake the runner's polls unless this process sent it."""
        origin, _, runner = payload.partition(":")
        if origin == self.origin:
            return
        with contextlib.suppress(ValueError):
            self.notify(uuid.UUID(runner))

    async def count_hearers(self) -> None:
        """Until cancelled: count the hub processes listening on PostgreSQL (every `HEARERS_SECONDS`)."""
        while True:
            try:
                async with self.db.reading() as session:
                    counted = (await session.execute(_LISTENERS, {"name": APPLICATION_NAME})).scalar_one()
                self.hearers = max(1, int(counted))
            except TRANSIENT_ERRORS as exc:
                log.debug("counting the hub processes that hear wake-ups: %s", exc)
            await asyncio.sleep(HEARERS_SECONDS)

    async def hear_redis(self, url: str, command_seconds: float) -> None:
        """Until cancelled: deliver the announcements published in Redis, on a connection of its own (the queue's
        pool is reset when Redis mode resumes); resubscribes after a failure. `command_seconds`: how long a
        command, the subscription's confirmation included, may take (`EXEKRA_REDIS_TIMEOUT_SECONDS`)."""
        redis = redis_client(url, timeout=command_seconds, max_connections=1, pool_wait=command_seconds)
        delay = 0.1
        failing = False
        try:
            while True:
                try:
                    async with redis.pubsub() as pubsub:
                        await pubsub.subscribe(CHANNEL)
                        async with asyncio.timeout(command_seconds):
                            await self._confirmed(pubsub)
                        if failing:
                            log.info("wake-ups through Redis: subscribed again")
                        failing, delay = False, 0.1
                        self.notify_all()  # announcements may have been sent while unsubscribed
                        await self._hear(pubsub)
                except (RedisError, OSError, TimeoutError) as exc:
                    if not failing:
                        log.warning("wake-ups through Redis: %s: %s; resubscribing", type(exc).__name__, exc)
                    failing = True
                except Exception:  # a bug must not end the subscription: logged in full, and retried
                    log.exception("wake-ups through Redis failed; resubscribing")
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
        finally:
            await redis.aclose()

    @staticmethod
    async def _confirmed(pubsub: aioredis.client.PubSub) -> None:
        """Until Redis confirms the subscription (a refusal, such as NOPERM, raises)."""
        while True:
            message = await pubsub.get_message(timeout=KEEPALIVE_SECONDS)
            if message is not None and message["type"] == "subscribe":
                return

    async def _hear(self, pubsub: aioredis.client.PubSub) -> None:
        unanswered = False  # a PING was sent and nothing came back since
        while True:
            message = await pubsub.get_message(timeout=KEEPALIVE_SECONDS)  # None: nothing came in that time
            if message is None:
                if unanswered:
                    raise TimeoutError(f"Redis did not answer a PING within {KEEPALIVE_SECONDS:g} s")
                await pubsub.ping()  # answered by a message: a dead connection shows
                unanswered = True
                continue
            unanswered = False
            if message["type"] == "message":
                self.deliver(message["data"])
