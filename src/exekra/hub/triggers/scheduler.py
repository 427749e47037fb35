"""The hub's own scheduler loop: fires due schedule triggers (SPEC §9).

Only the leader runs it (`exekra.hub.leader`). Schedules live in PostgreSQL (`triggers.next_fire_at`), so the
loop has no state of its own and a new leader carries on where the old one stopped: at start it rebuilds the next
fire times, then it sleeps until the earliest one (at most
`EXEKRA_SCHEDULER_INTERVAL_SECONDS`, so changes made through another hub process are seen soon) and fires
what is due. Firing is exactly-once across processes (see `firing`), so an old and a new leader that overlap
during a hand-over still fire each schedule once. A fire waiting under the queue_one
overlap policy starts within one interval of its trigger's last live run ending.
"""

from __future__ import annotations

import asyncio
import logging

from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.executions.service import ExecutionService
from exekra.hub.tasks import cancel_tasks
from exekra.hub.triggers import firing

log = logging.getLogger(__name__)

BATCH = 100
MIN_SLEEP_SECONDS = 0.05


class Scheduler:
    """Fires due schedules, looking at least every `interval` seconds."""

    def __init__(self, executions: ExecutionService, *, interval: float, keep_fires_days: int) -> None:
        self.db = executions.db
        self.executions = executions
        self.interval = interval
        self.keep_fires_days = keep_fires_days
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="exekra-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None

    async def fire_due(self) -> int:
        """Fire the schedules that are due now (one batch), then start the waiting fires whose trigger has no
        live run any more; returns how many schedules were due."""
        due = await firing.due_schedules(self.db, BATCH)
        for item in due:
            await firing.fire_schedule(self.executions, item, keep_fires_days=self.keep_fires_days)
        for item in await firing.waiting_fires_ready(self.db, BATCH):
            await firing.start_waiting_fire(self.executions, item)
        return len(due)

    async def _run(self) -> None:
        rebuilt = False
        while True:
            delay = self.interval
            try:
                if not rebuilt:
                    count = await firing.rebuild_schedules(self.db)
                    rebuilt = True
                    log.info("scheduler: %d schedule(s) rebuilt", count)
                if await self.fire_due() < BATCH:
                    until_next = await firing.seconds_until_next_fire(self.db)
                    if until_next is not None:
                        delay = min(delay, until_next)
                else:
                    delay = 0  # a full batch: more may be due
            except TRANSIENT_ERRORS as exc:  # e.g. the database is down: keep trying, without a traceback per second
                log.warning("scheduler: round failed (%s: %s), trying again", type(exc).__name__, exc)
            except Exception:  # a bug must not stop the schedules: logged in full, and tried again
                log.exception("scheduler: round failed, trying again")
            # A fire held by another process is due but skipped here: do not spin on it.
            await asyncio.sleep(max(delay, MIN_SLEEP_SECONDS))
