"""Dispatch through the Redis queue: event-driven matching by constraint signature, with retries.

A new (or re-queued) execution goes to one of `concurrency` dispatch workers, which enqueues it in Redis
and tries to hand it to an idle eligible runner at once. An idle runner peeks the best execution across
the signatures it satisfies and, only when there is one, claims in PostgreSQL. The claim is always the
conditional transition in `lifecycle`, so an id that Redis hands out twice, or a stale one, is never
assigned twice: it is dropped from Redis instead. An assignment's job leaves the queue through the claim's
effects (`SwitchingDispatcher.execution_assigned`), whoever made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from exekra.hub.dispatch.dispatcher import ModeDispatcher
from exekra.hub.dispatch.matcher import HeadState, Matcher, QueuedExecution
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.dispatch.queue import QueueUnavailable, RedisQueue
from exekra.hub.dispatch.sweeper import Sweeper
from exekra.hub.dispatch.wakeups import Wakeups
from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.lifecycle import Assignment, Claim, GroupFull
from exekra.hub.tasks import cancel_tasks

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.1
RETRY_CAP_SECONDS = 5.0
PROFILE_TTL_SECONDS = 5.0
MAX_STALE_HEADS = 100
RECONCILE_BATCH = 1000


def backoff(attempt: int) -> float:
    """Delay before retry number `attempt` (1, 2, …): exponential, with ±50 % jitter."""
    return min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class Reconciled:
    """What a reconciliation changed in Redis."""

    enqueued: int
    dropped: int


class RedisDispatcher(ModeDispatcher):
    """The Redis queue's dispatcher. Methods raise `QueueUnavailable` when Redis fails; work that fails
    in a background worker is handed to `fallback` (direct assignment) instead."""

    mode = "redis"

    def __init__(
        self,
        queue: RedisQueue,
        matcher: Matcher,
        wakeups: Wakeups,
        *,
        fallback: Callable[[uuid.UUID], Awaitable[None]],
        concurrency: int,
        attempts: int,
        reconcile_interval: float,
        sweep_interval: float = 1.0,
    ) -> None:
        super().__init__(matcher)
        self.queue = queue
        self.wakeups = wakeups
        self.fallback = fallback
        self.concurrency = concurrency
        self.attempts = attempts
        self.reconcile_interval = reconcile_interval
        self.active = False  # set by the switching dispatcher while Redis is the active mode
        self.sweeper = Sweeper("exekra-redis-sweeper", self._sweep, sweep_interval)
        self._inbox: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._profiles: dict[uuid.UUID, tuple[float, RunnerProfile | None]] = {}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"exekra-dispatch-worker-{n}") for n in range(self.concurrency)
        ]
        self._tasks.append(asyncio.create_task(self._reconcile_forever(), name="exekra-queue-reconciler"))
        await self.sweeper.start()

    async def stop(self) -> None:
        await self.sweeper.stop()
        await cancel_tasks(self._tasks)
        self._tasks = []

    async def execution_queued(self, execution_id: uuid.UUID, *, claim_now: bool = False) -> None:
        if claim_now:
            await self._dispatch(execution_id)
        else:
            self._inbox.put_nowait(execution_id)

    async def _work(self) -> None:
        while True:
            await self._dispatch(await self._inbox.get())

    async def _dispatch(self, execution_id: uuid.UUID) -> None:
        if not self.active:
            await self._fall_back(execution_id)
            return
        try:
            await self.dispatch_job(execution_id)
        except QueueUnavailable:
            await self._fall_back(execution_id)  # Redis went away: the switch to direct has happened

    async def _fall_back(self, execution_id: uuid.UUID) -> None:
        try:
            await self.fallback(execution_id)
        except TRANSIENT_ERRORS as exc:
            self.wakeups.end_quiet()  # the runners' next polls look at the queue again
            log.warning(
                "direct assignment of %s failed (%s: %s); the sweeper retries it", execution_id, type(exc).__name__, exc
            )

    async def dispatch_job(self, execution_id: uuid.UUID) -> Assignment | None:
        """Enqueue an execution and try to assign it at once; transient database failures are retried
        `attempts` times with backoff, then the job is recorded as failed (the execution stays QUEUED).

        The execution is read back first, not taken from its creation: under load a runner finishing its
        last job often claims the new execution from PostgreSQL before it reaches Redis, and enqueueing it
        anyway leaves a stale id that every idle runner trips over (measured: ~4 wasted claims per execution).
        """
        enqueued = False
        for attempt in range(1, self.attempts + 1):
            try:
                claim: Claim = None
                if not enqueued and self.wakeups.anyone_waiting and attempt == 1:
                    # Runners are long-polling in this process, so some are idle: hand it over before it
                    # goes through Redis at all (three round trips fewer on the pick-up's critical path).
                    claim = await self.matcher.for_execution(execution_id)
                    if isinstance(claim, Assignment):
                        return claim
                if not enqueued:
                    queued = await self.matcher.queued_execution(execution_id)
                    if queued is None:
                        return None  # assigned, stopped or failed meanwhile
                    await self.queue.enqueue(queued)
                    enqueued = True
                if not isinstance(claim, GroupFull):
                    claim = await self.matcher.for_execution(execution_id)
            except TRANSIENT_ERRORS as exc:
                if attempt == self.attempts:
                    self.wakeups.end_quiet()  # the runners' next polls look at the queue again
                    log.warning("dispatch of %s failed %d times: %s", execution_id, attempt, exc)
                    await self.queue.record_failure(execution_id, f"{type(exc).__name__}: {exc}", attempt)
                    return None
                await asyncio.sleep(backoff(attempt))
                continue
            return await self._settle(execution_id, claim)
        return None

    async def _settle(self, execution_id: uuid.UUID, claim: Claim) -> Assignment | None:
        """After a claim of an enqueued execution: its group is full, so it waits parked for a slot (a freed slot
        offers it again: `slot_freed`); or no idle eligible runner took it, or its row was locked for a moment:
        the sweeper looks again."""
        if isinstance(claim, GroupFull):
            await self._park(execution_id)
            return None
        if claim is None:
            self.sweeper.poke()
        return claim

    async def _park(self, execution_id: uuid.UUID, seq: str = "") -> None:
        """Park an execution whose group is full, then look again: a slot freed between the look that found the
        group full and the parking was offered before the parking (the freeing commits, then offers), so this
        second look is what sees it, and puts the execution back in the queue for the next idle runner."""
        if not await self.queue.park(execution_id, seq):
            return
        if await self.matcher.head_state(execution_id) is not HeadState.HELD:
            queued = await self.matcher.queued_execution(execution_id)
            if queued is not None:
                await self.queue.enqueue(queued, release=True)
                self.sweeper.poke()

    async def offer(self, execution: QueuedExecution) -> None:
        """A slot of its group freed: back to its signature's queue (with its place), and to an idle runner."""
        await self.queue.enqueue(execution, release=True)
        await self._settle(execution.id, await self.matcher.for_execution(execution.id))

    async def execution_unqueued(self, execution_id: uuid.UUID, status: str) -> None:
        """Raises `QueueUnavailable` when Redis fails (the reconciliation drops the id later)."""
        await self.queue.withdraw(execution_id, status)

    async def runner_idle(self, runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        if profile is None:
            profile = await self._profile(runner_id)
        else:
            self._remember(runner_id, profile)
        if profile is None:
            return None
        for _ in range(MAX_STALE_HEADS):
            head = await self.queue.peek(profile)
            if head is None:
                return None  # nothing this runner may take: no database round trip at all
            assignment = await self.matcher.for_runner(runner_id)
            if assignment is not None:
                return assignment
            state = await self.matcher.head_state(head.execution_id)
            if state is HeadState.WAITING:
                # The runner is not idle after all, or a concurrent claim holds the head's row: that claim
                # removes it. A lock may also have made this runner miss: the sweeper looks again.
                self.sweeper.poke()
                return None
            if state is HeadState.HELD:
                await self._park(head.execution_id, head.seq)  # until a slot of its group frees
            else:
                await self.queue.drop(head, "not queued")
        self.sweeper.poke()
        return None

    async def _profile(self, runner_id: uuid.UUID) -> RunnerProfile | None:
        """The runner's type and labels, cached briefly: a stale profile can only delay a match, since the
        claim itself checks eligibility in PostgreSQL."""
        now = time.monotonic()
        cached = self._profiles.get(runner_id)
        if cached is not None and now - cached[0] < PROFILE_TTL_SECONDS:
            return cached[1]
        profile = await self.matcher.runner_profile(runner_id)
        self._remember(runner_id, profile)
        return profile

    def _remember(self, runner_id: uuid.UUID, profile: RunnerProfile | None) -> None:
        if len(self._profiles) > 50_000:
            self._profiles.clear()
        self._profiles[runner_id] = (time.monotonic(), profile)

    async def _sweep(self) -> bool:
        if not self.active:
            return False
        try:
            return await self.dispatch_pending() > 0
        except QueueUnavailable:
            return False  # direct mode has taken over, and sweeps

    async def reconcile(self) -> Reconciled:
        """Make the Redis queue hold exactly the QUEUED executions of PostgreSQL: enqueue the missing ones
        (in batches, in dispatch order; a parked one stays parked), then drop ids whose execution is no longer
        QUEUED, from the queues and the held sets, and offer what the free slots of each held set's group can
        take (a slot freed by a process that died before its effect)."""
        enqueued = 0
        async with contextlib.aclosing(self.matcher.all_queued(RECONCILE_BATCH)) as batches:
            async for batch in batches:
                enqueued += await self.queue.enqueue_many(batch)
        dropped = 0
        for sig in await self.queue.signatures():
            dropped += await self._drop_stale(sig)
        for held, group in (await self.queue.held_groups()).items():
            dropped += await self._drop_stale("", held=held)
            await self.slot_freed(group)
        return Reconciled(enqueued, dropped)

    async def _drop_stale(self, sig: str, *, held: str = "") -> int:
        dropped = 0
        async with contextlib.aclosing(self.queue.waiting(sig, RECONCILE_BATCH, held=held)) as chunks:
            async for heads in chunks:
                queued = await self.matcher.still_queued([h.execution_id for h in heads])
                stale = [h for h in heads if h.execution_id not in queued]
                if stale:
                    dropped += await self.queue.drop_many(stale, "not queued")
        return dropped

    async def _reconcile_forever(self) -> None:
        """Periodic reconciliation: repairs what a crashed process or a lost event left behind."""
        while True:
            await asyncio.sleep(self.reconcile_interval)
            if not self.active:
                continue
            try:
                result = await self.reconcile()
                if result.enqueued or result.dropped:
                    log.info("queue reconciled: %d enqueued, %d dropped", result.enqueued, result.dropped)
                    self.sweeper.poke()
            except QueueUnavailable:
                pass  # the switch to direct mode has happened; its recovery reconciles
            except TRANSIENT_ERRORS as exc:
                log.warning("queue reconciliation failed (%s: %s); retrying later", type(exc).__name__, exc)
