"""Long-poll wake-ups: a runner's pending poll wakes the moment work is assigned to it, in any hub process.

The process that makes an assignment wakes its own waiting polls directly, after the commit. Other hub
processes learn it from a PostgreSQL `NOTIFY` on `CHANNEL`, sent once the claim (one self-committing
statement) has committed, and heard by each process's `Listener`. A hub that dies between the two leaves the
runner's long poll to end by its own timeout: its next poll finds the execution it holds. PostgreSQL serves
both queue modes, so wake-ups keep working across processes while Redis is down.
"""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy import text

from exekra.db.raw import Statements
from exekra.hub.listener import Listener
from exekra.hub.waiters import Waiters

CHANNEL = "exekra_wakeup"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Wakeups(Waiters):
    """This process's runners waiting in a long poll, by runner id."""

    def __init__(self, listener: Listener) -> None:
        super().__init__()
        self.origin = uuid.uuid4().hex  # tells this process's notifications from other processes'
        listener.subscribe(CHANNEL, self.deliver, on_connect=self.notify_all)

    async def publish(self, session: Statements, runner_id: uuid.UUID) -> None:
        """Announce an assignment to the other hub processes, once the claim has committed.

        Skipped when the runner's poll waits in this process: `notify` after the commit reaches it.
        """
        if not self.is_waiting(runner_id):
            await session.execute(_NOTIFY, {"channel": CHANNEL, "payload": f"{self.origin}:{runner_id}"})

    def deliver(self, payload: str) -> None:
        """A notification from PostgreSQL: wake the runner's polls unless this process sent it."""
        origin, _, runner = payload.partition(":")
        if origin == self.origin:
            return
        with contextlib.suppress(ValueError):
            self.notify(uuid.UUID(runner))
