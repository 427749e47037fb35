"""What both queue modes ask of PostgreSQL: the claims (through `lifecycle`, whose effects wake the runner
after the commit), and the few reads dispatch needs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Row, text

from exekra.db.session import Database
from exekra.hub import concurrency, lifecycle
from exekra.hub.concurrency import Group
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.lifecycle import Assignment, Claim, GroupFull
from exekra.hub.runners.models import idle

CLAIM_TRIES = 3  # a claim that lost its group's last slot to a concurrent one looks again, this many times in all


@dataclass(frozen=True)
class QueuedExecution:
    """A QUEUED execution with what ordering and matching need (SPEC §5, §6)."""

    id: uuid.UUID
    priority: int
    queued_at: datetime
    pinned_runner_id: uuid.UUID | None
    runner_type: str | None
    labels: tuple[str, ...]
    activities: tuple[str, ...] = ()  # what the runner must declare beyond what every runner has
    workflow_id: uuid.UUID | None = None
    concurrency_key: str | None = None  # its concurrency group in its workflow (None: no group)

    @property
    def group(self) -> Group | None:
        """Its concurrency group, if it has one."""
        if self.workflow_id is None or self.concurrency_key is None:
            return None
        return Group(self.workflow_id, self.concurrency_key)


class HeadState(Enum):
    """What became of an execution a runner's claim did not take."""

    GONE = "gone"  # no longer QUEUED
    HELD = "held"  # QUEUED, and its concurrency group is full
    WAITING = "waiting"  # QUEUED, and nothing holds it back but runners (or a row lock a moment ago)


_FOUND_QUEUED = lifecycle.found_in("x", lifecycle.ASSIGN.sources)
_QUEUED_COLUMNS = (
    "id, priority, queued_at, pinned_runner_id, runner_type, required_labels, required_activities, workflow_id, "
    "concurrency_key"
)
_QUEUED_ONE = text(f"SELECT {_QUEUED_COLUMNS} FROM executions x WHERE x.id = :id AND {_FOUND_QUEUED}")
_QUEUED_ALL = text(
    f"SELECT {_QUEUED_COLUMNS} FROM executions WHERE status = 'QUEUED' ORDER BY priority DESC, queued_at, id"
)
_STILL_QUEUED = text("SELECT id FROM executions WHERE id = ANY(:ids) AND status = 'QUEUED'")
_HEAD_STATE = text(
    f"SELECT NOT {concurrency.has_room('x')} AS held FROM executions x WHERE x.id = :id AND {_FOUND_QUEUED}"
)
_NEXT_IN_GROUP = concurrency.next_in_group_statement(", ".join(f"x.{c}" for c in _QUEUED_COLUMNS.split(", ")))
# Executions held back by their concurrency limit do not count: a freed slot offers them (no sweeping for them).
_ANY_QUEUED = text(
    f"SELECT EXISTS (SELECT 1 FROM executions x WHERE x.status = 'QUEUED' AND {concurrency.has_room('x')})"
)
_IDLE_RUNNERS = text(f"SELECT id FROM runners WHERE {idle()} ORDER BY last_heartbeat_at DESC NULLS LAST LIMIT :limit")
_RUNNER_PROFILE = text("SELECT id, type, labels, activities FROM runners WHERE id = :id")


def _queued(row: Row[Any]) -> QueuedExecution:
    return QueuedExecution(
        row.id,
        row.priority,
        row.queued_at,
        row.pinned_runner_id,
        row.runner_type,
        tuple(row.required_labels or ()),
        tuple(row.required_activities or ()),
        row.workflow_id,
        row.concurrency_key,
    )


class Matcher:
    """Claims in PostgreSQL (the only way work is assigned), each in a transaction of its own; claims and reads
    run on the driver, as the hot path they are: a claim is one self-committing statement (`Database.statement`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def for_runner(self, runner_id: uuid.UUID) -> Assignment | None:
        """Give an idle runner the best queued execution it may run (priority, then age) whose concurrency group
        has room. A claim that chose an execution whose group filled up meanwhile is made again (a fresh
        snapshot sees the group full and passes over it): concurrency limits never leave a runner idle."""
        for _ in range(CLAIM_TRIES):
            async with self.db.statement() as session:
                claim = await lifecycle.claim_for_runner(session, runner_id)
            if not isinstance(claim, GroupFull):
                return claim
        return None

    async def for_execution(self, execution_id: uuid.UUID) -> Claim:
        """Give a queued execution to the eligible idle runner with the most recent heartbeat (`GroupFull`: there
        is one, but the execution's concurrency group is full)."""
        async with self.db.statement() as session:
            return await lifecycle.assign_to_best_runner(session, execution_id)

    async def head_state(self, execution_id: uuid.UUID) -> HeadState:
        """Whether an execution a claim passed over is still QUEUED, and held back by its concurrency limit."""
        async with self.db.reading() as session:
            row = (await session.execute(_HEAD_STATE, {"id": execution_id})).first()
        if row is None:
            return HeadState.GONE
        return HeadState.HELD if row.held else HeadState.WAITING

    async def next_in_group(self, group: Group) -> list[QueuedExecution]:
        """The QUEUED executions of `group` (every group of its workflow when its key is None) that its free
        slots can take now, best first per group."""
        async with self.db.reading() as session:
            found: list[QueuedExecution] = []
            for key in await concurrency.waiting_keys(session, group):
                params = {"workflow_id": group.workflow_id, "key": key}
                found += [_queued(row) for row in await session.execute(_NEXT_IN_GROUP, params)]
        return found

    async def idle_runners(self, limit: int) -> list[uuid.UUID]:
        """Idle eligible-for-work runners, most recent heartbeat first."""
        async with self.db.reading() as session:
            return [row.id for row in await session.execute(_IDLE_RUNNERS, {"limit": limit})]

    async def any_queued(self) -> bool:
        async with self.db.reading() as session:
            return bool((await session.execute(_ANY_QUEUED)).scalar_one())

    async def queued_execution(self, execution_id: uuid.UUID) -> QueuedExecution | None:
        """The execution if it is still QUEUED."""
        async with self.db.reading() as session:
            row = (await session.execute(_QUEUED_ONE, {"id": execution_id})).first()
        return _queued(row) if row else None

    async def still_queued(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `ids` that are QUEUED."""
        if not ids:
            return set()
        async with self.db.reading() as session:
            return {row.id for row in await session.execute(_STILL_QUEUED, {"ids": list(ids)})}

    async def all_queued(self, batch: int) -> AsyncGenerator[list[QueuedExecution], None]:
        """Every QUEUED execution in dispatch order, `batch` at a time, in one streamed read."""
        async with self.db.session() as session:
            result = await session.stream(_QUEUED_ALL.execution_options(yield_per=batch))
            async for rows in result.partitions(batch):
                yield [_queued(row) for row in rows]

    async def runner_profile(self, runner_id: uuid.UUID) -> RunnerProfile | None:
        async with self.db.reading() as session:
            row = (await session.execute(_RUNNER_PROFILE, {"id": runner_id})).first()
        if row is None:
            return None
        return RunnerProfile(row.id, row.type, tuple(row.labels or ()), tuple(row.activities or ()))
