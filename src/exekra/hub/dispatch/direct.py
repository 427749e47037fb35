"""Direct assignment: matching straight from PostgreSQL (`FOR UPDATE SKIP LOCKED`), no Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy import text

from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.dispatch.wakeups import Wakeups
from exekra.hub.lifecycle import Assignment

log = logging.getLogger(__name__)

_IDLE_RUNNERS = text(
    "SELECT id FROM runners WHERE status = 'ONLINE' AND enabled AND current_execution_id IS NULL "
    "ORDER BY last_heartbeat_at DESC NULLS LAST LIMIT :limit"
)
_ANY_QUEUED = text("SELECT EXISTS (SELECT 1 FROM executions WHERE status = 'QUEUED')")


class DirectDispatcher:
    """Claims executions for runners in PostgreSQL; wakes long polls of this process.

    Claims skip locked rows, so an execution created while its only candidate runner's row is briefly
    locked (a heartbeat) can miss its match; the sweeper retries such leftovers every `sweep_interval`
    seconds, and only while something was left unmatched.
    """

    mode = "direct"

    def __init__(self, db: Database, *, sweep_interval: float = 1.0, sweep_batch: int = 200) -> None:
        self.db = db
        self.wakeups = Wakeups()
        self.sweep_interval = sweep_interval
        self.sweep_batch = sweep_batch
        self._pending = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pending.set()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="exekra-direct-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    def _announce(self, assignment: Assignment | None) -> Assignment | None:
        if assignment is not None:
            self.wakeups.notify(assignment.runner_id)
        return assignment

    async def execution_queued(self, execution_id: uuid.UUID) -> None:
        async with self.db.transaction() as session:
            assignment = await lifecycle.assign_to_best_runner(session, execution_id)
        if self._announce(assignment) is None:
            self._pending.set()

    async def runner_idle(self, runner_id: uuid.UUID) -> Assignment | None:
        async with self.db.transaction() as session:
            assignment = await lifecycle.claim_for_runner(session, runner_id)
        return self._announce(assignment)

    async def dispatch_pending(self) -> int:
        async with self.db.session() as session:
            idle = [row[0] for row in await session.execute(_IDLE_RUNNERS, {"limit": self.sweep_batch})]
        assigned = 0
        for runner_id in idle:
            if await self.runner_idle(runner_id) is None:
                break  # nothing left that this runner may take; others get their turn next sweep
            assigned += 1
        return assigned

    async def _sweep_forever(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            try:
                await self.dispatch_pending()
                async with self.db.session() as session:
                    if (await session.execute(_ANY_QUEUED)).scalar_one():
                        self._pending.set()
            except Exception:
                log.exception("dispatch sweep failed; retrying")
                self._pending.set()
            await asyncio.sleep(self.sweep_interval)

    def register_waiter(self, runner_id: uuid.UUID) -> asyncio.Event:
        return self.wakeups.register(runner_id)

    def unregister_waiter(self, runner_id: uuid.UUID, event: asyncio.Event) -> None:
        self.wakeups.unregister(runner_id, event)

    async def wait_for_work(self, runner_id: uuid.UUID, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
