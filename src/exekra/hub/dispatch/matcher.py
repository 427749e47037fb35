"""What both queue modes ask of PostgreSQL: the claims (through `lifecycle`, whose effects wake the runner
after the commit), and the few reads dispatch needs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text

from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.lifecycle import Assignment


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


@dataclass(frozen=True)
class RunnerProfile:
    """What decides which queued executions a runner may take."""

    id: uuid.UUID
    type: str | None
    labels: tuple[str, ...]
    activities: tuple[str, ...] = ()  # declared


_QUEUED_COLUMNS = "id, priority, queued_at, pinned_runner_id, runner_type, required_labels, required_activities"
_QUEUED_ONE = text(f"SELECT {_QUEUED_COLUMNS} FROM executions WHERE id = :id AND status = 'QUEUED'")
_QUEUED_ALL = text(
    f"SELECT {_QUEUED_COLUMNS} FROM executions WHERE status = 'QUEUED' ORDER BY priority DESC, queued_at, id"
)
_STILL_QUEUED = text("SELECT id FROM executions WHERE id = ANY(:ids) AND status = 'QUEUED'")
_ANY_QUEUED = text("SELECT EXISTS (SELECT 1 FROM executions WHERE status = 'QUEUED')")
_IDLE_RUNNERS = text(
    "SELECT id FROM runners WHERE status = 'ONLINE' AND enabled AND current_execution_id IS NULL "
    "ORDER BY last_heartbeat_at DESC NULLS LAST LIMIT :limit"
)
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
    )


class Matcher:
    """Claims in PostgreSQL (the only way work is assigned), each in a transaction of its own; claims and reads
    run on the driver, as the hot path they are: a claim is one self-committing statement (`Database.statement`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def for_runner(self, runner_id: uuid.UUID) -> Assignment | None:
        """Give an idle runner the best queued execution it may run (priority, then age)."""
        async with self.db.statement() as session:
            return await lifecycle.claim_for_runner(session, runner_id)

    async def for_execution(self, execution_id: uuid.UUID) -> Assignment | None:
        """Give a queued execution to the eligible idle runner with the most recent heartbeat."""
        async with self.db.statement() as session:
            return await lifecycle.assign_to_best_runner(session, execution_id)

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
