"""The dispatcher interface: what the API and maintenance ask of whichever queue is active."""

from __future__ import annotations

import asyncio
import uuid
from typing import Protocol

from exekra.hub.dispatch.matcher import RunnerProfile
from exekra.hub.lifecycle import Assignment


class Dispatcher(Protocol):
    """Matches queued executions with idle runners (SPEC §5, §6).

    Every method is safe to call at any time and from many tasks: the claim itself is a conditional
    update in PostgreSQL, so a duplicate or late event can never assign twice.
    """

    mode: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def execution_queued(self, execution_id: uuid.UUID) -> None:
        """A new (or re-queued) execution: try to hand it to an idle runner at once."""

    async def execution_unqueued(self, execution_id: uuid.UUID, status: str) -> None:
        """An execution left QUEUED without being assigned (stopped): forget it (best effort, never raises)."""

    async def runner_idle(self, runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        """A runner is idle (it polled or finished): give it the best queued execution it may run.
        `profile`: its type and labels when the caller has just read them (a poll), saving a look-up."""

    async def dispatch_pending(self) -> int:
        """Safety net: match queued executions with idle runners; returns how many were assigned."""

    async def wait_for_work(self, runner_id: uuid.UUID, event: asyncio.Event, seconds: float) -> None:
        """Wait until `event` (from `register_waiter`) fires or `seconds` pass."""

    def register_waiter(self, runner_id: uuid.UUID) -> asyncio.Event: ...

    def unregister_waiter(self, runner_id: uuid.UUID, event: asyncio.Event) -> None: ...

    def register_end_waiter(self, execution_id: uuid.UUID) -> asyncio.Event:
        """An event set when the execution ends (in any hub process); register before reading its state."""

    def unregister_end_waiter(self, execution_id: uuid.UUID, event: asyncio.Event) -> None: ...

    async def wait_for_end(self, execution_id: uuid.UUID, event: asyncio.Event, seconds: float) -> bool:
        """Wait until `event` (from `register_end_waiter`) fires or `seconds` pass; returns whether it fired."""


class DuplicateMirror(Protocol):
    """A fast copy of the idempotency keys (SPEC §5) kept beside PostgreSQL's `execution_keys`.

    Best effort: it never raises, may miss a key (then PostgreSQL answers), and only ever holds a key for
    less than the dedup window, so what it finds is a duplicate PostgreSQL would also have found.
    """

    async def find_duplicate(self, workflow_id: uuid.UUID, key: str) -> uuid.UUID | None: ...

    async def remember_duplicate(
        self, workflow_id: uuid.UUID, key: str, execution_id: uuid.UUID, seconds: float
    ) -> None: ...
