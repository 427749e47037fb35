"""Which way an assignment's wake-up goes to the other hub processes (hub/dispatch/switching.py, wakeups.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub.dispatch.queue import QueueUnavailable
from exekra.hub.dispatch.switching import SwitchingDispatcher
from exekra.hub.effects import EffectApplier
from exekra.hub.listener import Listener


class Ways:
    """Stands in for the Redis script (answering how many subscribers heard the publish) and the NOTIFY."""

    def __init__(self, dispatcher: SwitchingDispatcher) -> None:
        self.heard: int | Exception = 0
        self.published: list[tuple[str, str] | None] = []
        self.notified: list[uuid.UUID] = []
        assert dispatcher.queue is not None
        dispatcher.queue.mark_assigned = self.mark_assigned  # type: ignore[method-assign]
        dispatcher.wakeups.notify_by_postgres = self.notify_by_postgres  # type: ignore[method-assign]

    async def mark_assigned(self, execution_id: uuid.UUID, runner_id: uuid.UUID, announce: Any = None) -> int:
        if isinstance(self.heard, Exception):
            raise self.heard
        self.published.append(announce)
        return self.heard

    async def notify_by_postgres(self, runner_id: uuid.UUID) -> None:
        self.notified.append(runner_id)


@pytest.fixture
async def dispatcher() -> AsyncIterator[SwitchingDispatcher]:
    settings = Settings(
        database_url="postgresql://exekra@127.0.0.1:9/exekra", redis_url="redis://127.0.0.1:9/0", _env_file=None
    )
    db = Database(settings, EffectApplier())  # never connects: the dispatcher is not started
    switching = SwitchingDispatcher(db, settings, Listener(settings.asyncpg_dsn))
    yield switching
    await db.dispose()


async def test_redis_carries_the_wake_up_alone_only_when_every_hub_process_heard_it(
    dispatcher: SwitchingDispatcher,
) -> None:
    ways = Ways(dispatcher)
    dispatcher._switch("redis", "test")
    dispatcher.wakeups.hearers = 3  # hub processes listening on PostgreSQL
    runner = uuid.uuid4()

    ways.heard = 3
    await dispatcher.execution_assigned(uuid.uuid4(), runner)
    assert ways.published == [("exekra_wakeup", dispatcher.wakeups.payload(runner))]
    assert ways.notified == []

    ways.heard = 2  # one process is not subscribed (cut off from Redis, or its user may not subscribe)
    await dispatcher.execution_assigned(uuid.uuid4(), runner)
    ways.heard = -1  # Redis refused the publish
    await dispatcher.execution_assigned(uuid.uuid4(), runner)
    ways.heard = QueueUnavailable("Redis went away")
    await dispatcher.execution_assigned(uuid.uuid4(), runner)
    assert ways.notified == [runner, runner, runner]


async def test_a_poll_waiting_in_this_process_is_woken_here_and_announced_nowhere(
    dispatcher: SwitchingDispatcher,
) -> None:
    ways = Ways(dispatcher)
    dispatcher._switch("redis", "test")
    runner = uuid.uuid4()
    poll = dispatcher.wakeups.register(runner)
    await dispatcher.execution_assigned(uuid.uuid4(), runner)
    assert poll.is_set()
    assert ways.published == [None], "the job is recorded, nothing published"
    assert ways.notified == []

    dispatcher._switch("direct", "test")
    await dispatcher.execution_assigned(uuid.uuid4(), uuid.uuid4())
    assert len(ways.notified) == 1, "direct mode: PostgreSQL"
    assert ways.published == [None], "nothing through Redis"
