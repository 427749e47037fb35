"""A transition's effects (hub/effects.py) are applied once its transaction commits, and never after a rollback."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from exekra.hub import effects, lifecycle
from exekra.hub.audit.service import Actor
from exekra.hub.context import Hub
from exekra.hub.effects import Transition
from exekra.hub.executions import endings, queries
from exekra.hub.executions.creation import ExecutionRequest, new_execution
from exekra.hub.executions.models import TriggerType

from .conftest import SIMPLE_DEFINITION, OnlineRunner, Parked
from .protocol import create_execution, eventually, publish_workflow

ACTOR = Actor("USER", str(uuid.uuid4()), "127.0.0.1")


class Abort(Exception):
    """Raised inside a transaction to roll it back."""


async def _audited(hub: Hub, execution_id: uuid.UUID | str) -> list[str]:
    async with hub.db.session() as session:
        rows = await session.execute(
            text("SELECT action FROM audit_log WHERE entity_id = :id ORDER BY id"), {"id": str(execution_id)}
        )
        return [row.action for row in rows]


async def _status(hub: Hub, execution_id: uuid.UUID | str) -> str | None:
    async with hub.db.session() as session:
        found = await session.execute(text("SELECT status FROM executions WHERE id = :id"), {"id": execution_id})
        return found.scalar_one_or_none()


async def test_a_stop_rolled_back_applies_nothing_and_the_committed_one_applies_every_effect(
    hub: Hub, admin: httpx.AsyncClient
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    execution_id = uuid.UUID((await create_execution(admin, workflow_id))["id"])
    ended: list[Transition] = []

    async def record_end(transition: Transition) -> None:
        ended.append(transition)

    remove_hook = hub.effects.on_end(record_end)
    end_waiter = hub.executions.endings.register(execution_id)
    await queries.await_end(hub.db, execution_id)  # a waiting client's look: its end is announced from now on
    try:
        with pytest.raises(Abort):
            async with hub.db.transaction() as session:
                outcome = await lifecycle.request_stop(session, execution_id, ACTOR)
                assert outcome.stopped
                assert [t.rule for t in effects.recorded_transitions(session)] == ["stop-now"]
                raise Abort

        assert await _status(hub, execution_id) == "QUEUED"
        assert await _audited(hub, execution_id) == ["execution.create"]
        assert not await end_waiter.wait(0.3), "a rolled-back end was announced"
        assert ended == []

        stopped = await hub.executions.stop(execution_id, ACTOR)

        assert stopped.status == "STOPPED"
        assert await _audited(hub, execution_id) == ["execution.create", "execution.stop"]
        assert await end_waiter.wait(5), "the end was not announced"
        assert [(t.rule, t.execution_id, t.status) for t in ended] == [("stop-now", execution_id, "STOPPED")]
    finally:
        remove_hook()
        hub.executions.endings.unregister(execution_id, end_waiter)


async def test_only_the_end_of_an_execution_somebody_waits_for_is_announced(hub: Hub, admin: httpx.AsyncClient) -> None:
    # Each announcement costs every listening hub process a transaction of PostgreSQL's: an end nobody waits for
    # sends none. Notifications arrive in commit order, so the first heard is the awaited one's if the other's
    # was not sent.
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    unawaited = uuid.UUID((await create_execution(admin, workflow_id))["id"])
    awaited = uuid.UUID((await create_execution(admin, workflow_id))["id"])
    assert (await queries.await_end(hub.db, awaited)).execution.status == "QUEUED"
    heard: asyncio.Queue[str] = asyncio.Queue()
    connection = await asyncpg.connect(hub.settings.asyncpg_dsn)
    try:
        await connection.add_listener(endings.CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        await hub.executions.stop(unawaited, ACTOR)
        await hub.executions.stop(awaited, ACTOR)
        assert await asyncio.wait_for(heard.get(), 5) == str(awaited)
        assert (await queries.await_end(hub.db, unawaited)).execution.status == "STOPPED"
    finally:
        await connection.close()


async def test_a_look_that_waits_for_an_ending_statement_sees_the_end(hub: Hub, admin: httpx.AsyncClient) -> None:
    # The look's snapshot predates the end, but its mark waits for the ending statement's row lock and then finds
    # nothing live to mark: it must read again, or its client would wait for an announcement never sent.
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    execution_id = uuid.UUID((await create_execution(admin, workflow_id))["id"])

    async def look_blocked() -> bool:
        async with hub.db.session() as session:
            found = await session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%end_awaited%'"
                )
            )
            return bool(found.scalar_one())

    async with hub.db.transaction() as session:
        assert (await lifecycle.request_stop(session, execution_id, ACTOR)).stopped
        look = asyncio.create_task(queries.await_end(hub.db, execution_id))
        await eventually(look_blocked, 5, "the look to wait for the stop's row lock")
    assert (await asyncio.wait_for(look, 5)).execution.status == "STOPPED"


async def test_a_creation_rolled_back_is_never_offered_to_a_waiting_runner(
    hub: Hub, admin: httpx.AsyncClient, online_runner: OnlineRunner, parked: Parked
) -> None:
    workflow_id = await publish_workflow(admin, "wf", SIMPLE_DEFINITION)
    runner = await online_runner("idle")
    poll = asyncio.create_task(runner.poll(wait=2))
    await parked(runner)
    request = ExecutionRequest(workflow_id=workflow_id, inputs={}, trigger_type=TriggerType.API, triggered_by=None)

    with pytest.raises(Abort):
        async with hub.db.transaction() as session:
            execution = await lifecycle.insert_queued(
                session, (await new_execution(session, uuid.UUID(workflow_id), request)).execution, ACTOR
            )
            raise Abort

    assert (await poll).status_code == 204
    assert await _status(hub, execution.id) is None
    assert await _audited(hub, execution.id) == []

    created = await hub.executions.create(request, ACTOR)  # committed: offered at once
    polled = await runner.poll(wait=5)
    assert polled.status_code == 200 and polled.json()["execution"]["id"] == str(created.execution.id)
