"""The dispatcher interface: what the execution service and the effect applier ask of the active queue."""

from __future__ import annotations

import uuid
from typing import Protocol

from exekra.hub.concurrency import Group
from exekra.hub.dispatch.handed import Handed
from exekra.hub.dispatch.matcher import Matcher, QueuedExecution
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.dispatch.wakeups import Wakeups
from exekra.hub.lifecycle import Assignment


class Dispatcher(Protocol):
    """Matches queued executions with idle runners (SPEC §5, §6), and wakes the runners' long polls (`wakeups`).

    Every method is safe to call at any time and from many tasks: the claim itself is a conditional
    update in PostgreSQL, so a duplicate or late event can never assign twice.
    """

    mode: str
    wakeups: Wakeups  # this process's long polls, by runner: registered, woken, renewed quietly

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def execution_queued(self, execution_id: uuid.UUID, *, claim_now: bool = False) -> None:
        """A new (or re-queued) execution: try to hand it to an idle runner at once. `claim_now`: return only once
        that claim is done (a re-queue: the claims for the runner and the slot it let go of come after it), where
        Redis mode otherwise leaves it to its dispatch workers."""

    async def execution_unqueued(self, execution_id: uuid.UUID, status: str) -> None:
        """An execution left QUEUED without being assigned (stopped, timed out): forget it (best effort)."""

    async def slot_freed(self, group: Group) -> None:
        """After the commit of a change that freed concurrency slots of `group` (an execution of it let go of
        one, or its workflow's limit was raised): offer the executions that wait for them, best first."""

    async def execution_assigned(
        self, execution_id: uuid.UUID, runner_id: uuid.UUID, handed: Handed | None = None
    ) -> None:
        """After the claim's commit: wake the runner's poll, in this process (handing it the execution, when the
        claim read it) or announced to the others (`wakeups`); the queue records the job."""

    async def runner_idle(self, runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        """A runner is idle (it polled or finished): give it the best queued execution it may run.
        `profile`: its type, labels and activities when the caller has just read them (a poll, or the end report's
        statement), saving a look-up."""

    async def dispatch_pending(self) -> int:
        """Safety net: offer every idle runner work; returns how many were assigned."""


class ModeDispatcher:
    """What both queue modes share: matching through the `Matcher`, and the safety-net pass."""

    sweep_batch = 200

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher

    async def runner_idle(self, runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        raise NotImplementedError

    async def offer(self, execution: QueuedExecution) -> None:
        """Offer an execution whose concurrency slot may have freed to the idle runners."""
        raise NotImplementedError

    async def slot_freed(self, group: Group) -> None:
        """Offer the executions of `group` that its free slots can take now, best first."""
        for execution in await self.matcher.next_in_group(group):
            await self.offer(execution)

    async def dispatch_pending(self) -> int:
        """Offer each idle runner (most recent heartbeat first, at most `sweep_batch`) the work it may run."""
        assigned = 0
        for runner_id in await self.matcher.idle_runners(self.sweep_batch):
            if await self.runner_idle(runner_id) is not None:
                assigned += 1
        return assigned


class DuplicateMirror(Protocol):
    """A fast copy of the idempotency keys (SPEC §5) kept beside PostgreSQL's `execution_keys`.

    Best effort: it never raises, may miss a key (then PostgreSQL answers), and only ever holds a key for
    less than the dedup window, so what it finds is a duplicate PostgreSQL would also have found.
    """

    async def find_duplicate(self, workflow_id: uuid.UUID, key: str) -> uuid.UUID | None: ...

    async def remember_duplicate(
        self, workflow_id: uuid.UUID, key: str, execution_id: uuid.UUID, seconds: float
    ) -> None: ...
