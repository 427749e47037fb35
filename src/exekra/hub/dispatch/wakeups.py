"""Long-poll wake-ups: a runner's pending poll wakes the moment work is assigned to it, in any hub process.

The process that makes an assignment wakes its own waiting polls directly, after the commit. The other hub
processes hear of it on `CHANNEL`, announced once the claim has committed:

- while the queue is in Redis mode, by Redis pub/sub, sent by the script that records the assignment in the
  queue (`RedisQueue.mark_assigned`): no round trip of its own, and no work for PostgreSQL;
- otherwise, or when that script fails, by a PostgreSQL `NOTIFY`. PostgreSQL makes every listening backend read
  each notification in a transaction of its own, whatever its channel, so each one costs a transaction per hub
  process (bench/RESULTS.md, 2026-12-04 15:04): this is why Redis carries them when it can.

Every process hears both (`hear_redis` and its `Listener`), so the sender's mode alone decides the way. A
subscription that (re)connects wakes every poll of its process, which looks again: what was sent while it was
down is lost. A hub that dies between the commit and the announcement leaves the runner's long poll to end by
its own timeout: its next poll finds the execution it holds.
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
from exekra.hub.listener import Listener
from exekra.hub.waiters import Waiters

log = logging.getLogger(__name__)

CHANNEL = "exekra_wakeup"
KEEPALIVE_SECONDS = 10.0  # a quiet subscription asks Redis this often whether the connection still works
RECONNECT_MAX_SECONDS = 1.0  # Redis mode resumes within a probe of Redis's return: what is published before the
# subscription is back reaches this process's polls when it resubscribes and wakes them all
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Wakeups(Waiters):
    """This process's runners waiting in a long poll, by runner id."""

    def __init__(self, listener: Listener, db: Database) -> None:
        super().__init__()
        self.db = db
        self.origin = uuid.uuid4().hex  # tells this process's announcements from other processes'
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

    async def hear_redis(self, redis: aioredis.Redis) -> None:
        """Deliver the announcements published in Redis, until cancelled; resubscribes after a failure."""
        delay = 0.1
        failing = False
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    if failing:
                        log.info("wake-ups through Redis: subscribed again")
                    failing, delay = False, 0.1
                    self.notify_all()  # announcements may have been sent while unsubscribed
                    await self._hear(pubsub)
            except (RedisError, OSError, TimeoutError) as exc:
                if not failing:
                    log.warning("wake-ups through Redis: %s: %s; resubscribing", type(exc).__name__, exc)
                failing = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

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
