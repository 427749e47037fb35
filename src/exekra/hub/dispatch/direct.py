"""Direct assignment: matching straight from PostgreSQL (`FOR UPDATE SKIP LOCKED`), no Redis."""

from __future__ import annotations

import uuid

from exekra.hub.dispatch.dispatcher import ModeDispatcher
from exekra.hub.dispatch.matcher import Matcher, QueuedExecution
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.dispatch.sweeper import Sweeper
from exekra.hub.lifecycle import Assignment


class DirectDispatcher(ModeDispatcher):
    """Claims executions for runners in PostgreSQL.

    Claims skip locked rows, so an execution created while its only candidate runner's row is briefly
    locked (a heartbeat) can miss its match; the sweeper retries such leftovers every `sweep_interval`
    seconds, and only while queued work exists.
    """

    mode = "direct"

    def __init__(self, matcher: Matcher, *, sweep_interval: float = 1.0) -> None:
        super().__init__(matcher)
        self.active = True  # False while the Redis queue is the active mode: the sweeper then rests
        self.sweeper = Sweeper("exekra-direct-sweeper", self._sweep, sweep_interval)

    async def start(self) -> None:
        self.sweeper.poke()
        await self.sweeper.start()

    async def stop(self) -> None:
        await self.sweeper.stop()

    async def execution_queued(self, execution_id: uuid.UUID) -> None:
        """An execution whose concurrency group is full waits for a slot to free (`slot_freed`), unswept."""
        if await self.matcher.for_execution(execution_id) is None:
            self.sweeper.poke()

    async def offer(self, execution: QueuedExecution) -> None:
        await self.execution_queued(execution.id)

    async def runner_idle(self, runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        return await self.matcher.for_runner(runner_id)

    async def _sweep(self) -> bool:
        if not self.active:
            return False
        await self.dispatch_pending()
        return await self.matcher.any_queued()
