"""A long poll's renewal reads nothing when nothing happened to its runner (issue 17: signs of life are not
transactions), and whatever a full poll would have found since (work assigned, a revoked token, the runner deleted
or marked OFFLINE) makes the next poll a full one (`exekra.hub.dispatch.wakeups`). A heartbeat sent while the
runner's long poll waits, idle and not woken, reads nothing either; once anything woke the poll, it reads."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from exekra.hub.auth.security import RunnerClaims
from exekra.hub.context import Hub
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.executions import queries
from exekra.hub.lifecycle import Assignment
from exekra.hub.listener import APPLICATION_NAME
from exekra.hub.runners.liveness import Liveness, Sign
from exekra.hub.tasks import drain

from .conftest import SIMPLE_DEFINITION
from .protocol import (
    ProtocolRunner,
    backdate,
    create_execution,
    declaration,
    eventually,
    long_poll_waiting,
    publish_workflow,
    running_execution,
    statements_sent,
)

QUIET = 0.05  # seconds: a long poll that ends by its timeout


@pytest.fixture(autouse=True)
async def the_only_hub_process(hub: Hub) -> None:
    """Notes are kept only while one hub process hears wake-ups: no other test's hub is still connected."""

    async def alone() -> bool:
        return await hub.dispatcher.wakeups.count() == 1

    await eventually(alone, 10, "the other hub processes to leave the database")


async def _status(hub: Hub, runner: ProtocolRunner) -> str:
    async with hub.db.session() as session:
        row = await session.execute(text("SELECT status FROM runners WHERE id = :id"), {"id": runner.runner_id})
        return str(row.scalar_one())


async def _signs(hub: Hub, runner: ProtocolRunner) -> tuple[Any, int]:
    """The runner's last sign of life and its metrics samples, as written (this process's signs flushed first: the
    hub's own flush, once a second, may have written them already)."""
    await hub.executions.liveness.flush()
    async with hub.db.session() as session:
        row = await session.execute(
            text(
                "SELECT last_heartbeat_at, (SELECT count(*) FROM runner_metrics m WHERE m.runner_id = r.id)"
                " FROM runners r WHERE r.id = :id"
            ),
            {"id": runner.runner_id},
        )
        last, samples = row.one()
        return last, int(samples)


async def _quiet_poll(runner: ProtocolRunner) -> None:
    """A long poll that ends by its timeout: the runner's next poll here may renew quietly."""
    assert (await runner.poll(wait=QUIET)).status_code == 204


async def test_a_renewal_sends_nothing_to_postgresql_or_redis_and_still_counts_as_a_sign_of_life(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.online(admin, client, "quiet")
    await _quiet_poll(runner)
    signed, _ = await _signs(hub, runner)
    looks = _count_looks(hub, monkeypatch)
    with statements_sent(hub, monkeypatch) as sent:
        for _ in range(3):
            await _quiet_poll(runner)
    assert sent == [] and looks == []
    assert (await _signs(hub, runner))[0] > signed  # the sign of life, written with the next flush
    # A poll that does not wait (interval polling) is always a full one.
    looks = _count_looks(hub, monkeypatch)
    assert (await runner.poll()).status_code == 204
    assert looks == [uuid.UUID(runner.runner_id)]


@pytest.mark.parametrize("when", ["between two polls", "during the renewal"])
async def test_work_assigned_after_a_quiet_poll_is_answered_by_the_next_one(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, when: str
) -> None:
    runner = await ProtocolRunner.online(admin, client, f"work {when}")
    workflow_id = await publish_workflow(admin, f"work {when}", SIMPLE_DEFINITION)
    await _quiet_poll(runner)
    if when == "between two polls":
        execution_id = (await create_execution(admin, workflow_id))["id"]
        await drain()  # the create's match has assigned it to the idle runner, which was not polling
        answer = await runner.poll(wait=10)
    else:
        waiting = asyncio.create_task(runner.poll(wait=10))
        await long_poll_waiting(client)
        execution_id = (await create_execution(admin, workflow_id))["id"]
        answer = await asyncio.wait_for(waiting, 10)
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == execution_id


@pytest.mark.parametrize("change", ["regenerate-secret", "delete"])
async def test_a_token_revoked_between_two_polls_is_refused_by_the_next_one(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, change: str
) -> None:
    runner = await ProtocolRunner.online(admin, client, f"revoked-{change}")
    await _quiet_poll(runner)
    if change == "delete":
        assert (await admin.delete(f"/api/runners/{runner.runner_id}")).status_code == 200
    else:
        assert (await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")).status_code == 200
    assert (await runner.poll(wait=10)).status_code == 401


async def test_a_quiet_renewal_is_ended_by_a_revocation(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    runner = await ProtocolRunner.online(admin, client, "revoked-waiting")
    await _quiet_poll(runner)
    waiting = asyncio.create_task(runner.poll(wait=10))
    await long_poll_waiting(client)
    assert (await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")).status_code == 200
    assert (await asyncio.wait_for(waiting, 10)).status_code in (204, 401)  # ended at once, not after 10 s
    assert (await runner.poll(wait=10)).status_code == 401


async def test_a_runner_marked_offline_between_two_polls_is_online_again_after_the_next_one(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await ProtocolRunner.online(admin, client, "offline")
    await _quiet_poll(runner)
    assert runner.runner_id is not None
    await backdate(hub, "runners", "last_heartbeat_at", runner.runner_id, hub.settings.runner_offline_seconds + 60)
    report = await hub.executions.check_stale(not_before=None)
    assert report.runners_offline >= 1 and await _status(hub, runner) == "OFFLINE"
    await drain()  # the mark's wake-up
    await _quiet_poll(runner)
    assert await _status(hub, runner) == "ONLINE"  # a full poll: back at once, not at the next write


async def test_a_disabled_runner_gets_no_work_while_it_renews(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await ProtocolRunner.online(admin, client, "disabled")
    workflow_id = await publish_workflow(admin, "disabled", SIMPLE_DEFINITION)
    await _quiet_poll(runner)
    patched = await admin.patch(f"/api/runners/{runner.runner_id}", json={"enabled": False})
    assert patched.status_code == 200
    execution_id = (await create_execution(admin, workflow_id))["id"]
    assert (await runner.poll(wait=QUIET)).status_code == 204

    async def queued() -> Any:
        detail = (await admin.get(f"/api/executions/{execution_id}")).json()["execution"]
        return detail["status"] == "QUEUED"

    await eventually(queued, 5, "the execution to wait in the queue")


async def test_a_failed_effect_makes_every_runner_s_next_poll_a_full_one(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.online(admin, client, "after-failure")
    workflow_id = await publish_workflow(admin, "after-failure", SIMPLE_DEFINITION)
    await _quiet_poll(runner)

    async def unavailable(execution_id: uuid.UUID, *, claim_now: bool = False) -> None:
        raise OSError("the queue went away")  # the create's dispatch fails: its execution stays QUEUED

    monkeypatch.setattr(hub.dispatcher, "execution_queued", unavailable)
    await create_execution(admin, workflow_id)
    await drain()
    monkeypatch.undo()
    looks = _count_looks(hub, monkeypatch)
    assert (await runner.poll(wait=QUIET)).status_code in (200, 204)  # 200 where its look claims from PostgreSQL
    assert looks == [uuid.UUID(runner.runner_id or "")]  # a full poll: the runner looked at the queue itself


def _count_looks(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The runners whose polls look at the queue (`runner_idle`) from now on."""
    looks: list[uuid.UUID] = []
    runner_idle = hub.dispatcher.runner_idle

    async def counted(runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        looks.append(runner_id)
        return await runner_idle(runner_id, profile)

    monkeypatch.setattr(hub.dispatcher, "runner_idle", counted)
    return looks


async def test_with_another_hub_process_listening_every_poll_is_a_full_one(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.online(admin, client, "two-processes")
    await _quiet_poll(runner)
    # Another hub process, as PostgreSQL sees it: a connection under the listeners' application name.
    other = await asyncpg.connect(hub.settings.asyncpg_dsn, server_settings={"application_name": APPLICATION_NAME})
    try:
        assert await hub.dispatcher.wakeups.count() == 2
        looks = _count_looks(hub, monkeypatch)
        await _quiet_poll(runner)
        await _quiet_poll(runner)
    finally:
        await other.close()
    assert looks == [uuid.UUID(runner.runner_id or "")] * 2  # both looked at the queue: no note was kept


DIGEST = "e" * 64


async def _epoch(hub: Hub, runner: ProtocolRunner) -> int:
    async with hub.db.session() as session:
        row = await session.execute(text("SELECT token_epoch FROM runners WHERE id = :id"), {"id": runner.runner_id})
        return int(row.scalar_one())


async def _idle_poll(hub: Hub, runner: ProtocolRunner, wait: float = 30) -> asyncio.Task[httpx.Response]:
    """A long poll of the runner, waiting once its row, read by it or by the full poll it renews, vouches for it."""
    waiting = asyncio.create_task(runner.poll(wait=wait))
    epoch = await _epoch(hub, runner)

    async def vouched() -> bool:
        return hub.dispatcher.wakeups.idle_poll(uuid.UUID(runner.runner_id or ""), epoch) is not None

    await eventually(vouched, 5, "the runner's long poll to wait, its row read")
    return waiting


async def test_a_heartbeat_while_the_runner_s_poll_waits_sends_nothing_and_answers_as_the_row_would(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.register(admin, client, "heartbeat-quiet")
    assert (await runner.auth(declaration("acme.widget", digest=DIGEST))).status_code == 200
    full = await runner.heartbeat(catalogueDigest=DIGEST)
    waiting = await _idle_poll(hub, runner)
    signed, samples = await _signs(hub, runner)
    with statements_sent(hub, monkeypatch) as sent:
        same = await runner.heartbeat(catalogueDigest=DIGEST)
        other = await runner.heartbeat(catalogueDigest="f" * 64)
        older = await runner.heartbeat()  # an older runner sends no digest
    assert sent == []
    assert full.status_code == same.status_code == 200 and same.json() == full.json()
    assert same.json() == {"status": "ONLINE", "stopExecutionIds": [], "catalogueWanted": False}
    assert other.json()["catalogueWanted"] is True and older.json()["catalogueWanted"] is False
    last, written = await _signs(hub, runner)  # the signs of life, and the metrics of each, written with the next flush
    assert last > signed and written == samples + 3
    waiting.cancel()


async def test_a_heartbeat_after_work_woke_the_poll_reads_the_row(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await ProtocolRunner.online(admin, client, "heartbeat-busy")
    workflow_id = await publish_workflow(admin, "heartbeat-busy", SIMPLE_DEFINITION)
    waiting = await _idle_poll(hub, runner)
    execution_id = (await create_execution(admin, workflow_id))["id"]
    await drain()  # assigned, and the poll woken (its answer may not have reached us yet)
    assert (await runner.heartbeat()).json()["status"] == "BUSY"
    assert (await asyncio.wait_for(waiting, 10)).json()["execution"]["id"] == execution_id


async def test_a_heartbeat_with_a_revoked_token_is_refused_while_the_poll_waits(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await ProtocolRunner.online(admin, client, "heartbeat-revoked")
    waiting = await _idle_poll(hub, runner)
    assert (await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")).status_code == 200
    assert (await runner.heartbeat()).status_code == 401
    assert (await asyncio.wait_for(waiting, 10)).status_code in (204, 401)  # woken at once, not after 30 s


async def test_with_another_hub_process_listening_every_heartbeat_reads_the_row(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.online(admin, client, "heartbeat-two-processes")
    waiting = await _idle_poll(hub, runner)
    other = await asyncpg.connect(hub.settings.asyncpg_dsn, server_settings={"application_name": APPLICATION_NAME})
    try:
        assert await hub.dispatcher.wakeups.count() == 2
        with statements_sent(hub, monkeypatch) as sent:
            assert (await runner.heartbeat()).status_code == 200
    finally:
        await other.close()
    assert sent  # the runner's row was read
    waiting.cancel()


async def test_a_heartbeat_during_a_quiet_renewal_is_answered_from_the_full_poll_s_read(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.register(admin, client, "heartbeat-renewal")
    assert (await runner.auth(declaration("acme.widget", digest=DIGEST))).status_code == 200
    await _quiet_poll(runner)  # a full poll, ended by its timeout
    looks = _count_looks(hub, monkeypatch)
    waiting = await _idle_poll(hub, runner)  # its renewal: quiet, carrying the digest over
    with statements_sent(hub, monkeypatch) as sent:
        beat = await runner.heartbeat(catalogueDigest=DIGEST)
    assert sent == [] and looks == []
    assert beat.json() == {"status": "ONLINE", "stopExecutionIds": [], "catalogueWanted": False}
    waiting.cancel()


async def test_a_sign_in_with_a_new_catalogue_wakes_the_poll_so_the_heartbeat_reads_it(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await ProtocolRunner.register(admin, client, "heartbeat-new-catalogue")
    assert (await runner.auth(declaration("acme.widget", digest=DIGEST))).status_code == 200
    waiting = await _idle_poll(hub, runner)
    upgraded = "a" * 64  # the same activities from a newer plugin: only the digest differs
    assert (await runner.auth(declaration("acme.widget", digest=upgraded))).status_code == 200
    assert (await runner.heartbeat(catalogueDigest=upgraded)).json()["catalogueWanted"] is False
    assert (await asyncio.wait_for(waiting, 10)).status_code == 204  # woken by the sign-in, not after 30 s


async def test_after_a_failed_effect_the_waiting_poll_answers_no_heartbeat_and_leaves_no_note(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.online(admin, client, "heartbeat-after-failure")
    # For another kind of runner: no safety net (the sweeper, the queue's reconciliation) can hand it to this one,
    # whose waiting poll then ends empty and leaves it idle, so that the poll after it looks at the queue.
    workflow_id = await publish_workflow(admin, "heartbeat-after-failure", SIMPLE_DEFINITION, labels=["elsewhere"])
    waiting = await _idle_poll(hub, runner, wait=1)

    async def unavailable(execution_id: uuid.UUID, *, claim_now: bool = False) -> None:
        raise OSError("the queue went away")

    monkeypatch.setattr(hub.dispatcher, "execution_queued", unavailable)
    await create_execution(admin, workflow_id)
    await drain()
    monkeypatch.undo()
    with statements_sent(hub, monkeypatch) as sent:
        assert (await runner.heartbeat()).status_code == 200
    assert sent  # the runner's row was read
    assert (await asyncio.wait_for(waiting, 10)).status_code == 204
    looks = _count_looks(hub, monkeypatch)
    assert (await runner.poll(wait=QUIET)).status_code == 204
    assert looks == [uuid.UUID(runner.runner_id or "")]  # the poll after it is a full one


async def _ran(runner: ProtocolRunner, admin: httpx.AsyncClient, workflow_id: str) -> tuple[str, int]:
    """An execution of `workflow_id` taken and started by `runner` (not completed yet)."""
    execution_id = (await create_execution(admin, workflow_id))["id"]
    work = await runner.take(execution_id)
    assert (await runner.start(execution_id, work["attempt"])).status_code == 200
    return execution_id, work["attempt"]


async def test_the_poll_after_a_complete_that_left_the_runner_idle_sends_nothing(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end report read the runner's row and offered it the queue's work: its next long poll renews quietly."""
    runner = await ProtocolRunner.register(admin, client, "after-complete")
    assert (await runner.auth(declaration("acme.widget", digest=DIGEST))).status_code == 200
    workflow_id = await publish_workflow(admin, "after-complete", SIMPLE_DEFINITION)
    execution_id, attempt = await _ran(runner, admin, workflow_id)
    assert (await runner.complete(execution_id, attempt)).status_code == 200
    runner_id, epoch = uuid.UUID(runner.runner_id or ""), await _epoch(hub, runner)
    looks = _count_looks(hub, monkeypatch)
    with statements_sent(hub, monkeypatch) as sent:
        waiting = asyncio.create_task(runner.poll(wait=30))

        async def vouched() -> bool:  # by the end report's read
            return hub.dispatcher.wakeups.idle_poll(runner_id, epoch) is not None

        await eventually(vouched, 5, "the runner's long poll to wait")
        beat = await runner.heartbeat(catalogueDigest=DIGEST)  # reads nothing either, and knows the digest
    assert sent == [] and looks == []
    assert beat.json() == {"status": "ONLINE", "stopExecutionIds": [], "catalogueWanted": False}
    # Work created now wakes it, as any long poll.
    created = (await create_execution(admin, workflow_id))["id"]
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == created


async def test_work_assigned_while_a_complete_is_recorded_is_answered_by_the_next_poll(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An assignment made after the end report's statement and before its note (here: during the report's offer of
    work, by a create's match, which finds the runner idle) leaves no note: the next poll is a full one."""
    runner = await ProtocolRunner.online(admin, client, "complete-then-work")
    workflow_id = await publish_workflow(admin, "complete-then-work", SIMPLE_DEFINITION)
    execution_id, attempt = await _ran(runner, admin, workflow_id)
    runner_idle = hub.dispatcher.runner_idle
    created: list[str] = []

    async def offer_then_a_create(runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
        offered = await runner_idle(runner_id, profile)  # nothing queued
        created.append((await create_execution(admin, workflow_id))["id"])
        await drain()  # its match has assigned it to the runner, idle since the statement
        return offered

    monkeypatch.setattr(hub.dispatcher, "runner_idle", offer_then_a_create)
    assert (await runner.complete(execution_id, attempt)).status_code == 200
    monkeypatch.undo()
    answer = await runner.poll(wait=QUIET)
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == created[0]


async def _handed_on_complete(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, name: str, **report: Any
) -> tuple[ProtocolRunner, str, dict[str, Any]]:
    """A runner whose end report (with the fields `report`) was offered a queued execution, which it took: (the
    runner, that execution, the report's answer)."""
    runner = await ProtocolRunner.online(admin, client, name)
    workflow_id = await publish_workflow(admin, name, SIMPLE_DEFINITION)
    execution_id, attempt = await _ran(runner, admin, workflow_id)
    queued = (await create_execution(admin, workflow_id))["id"]  # waits: its only runner is busy
    await drain()
    answer = await runner.complete(execution_id, attempt, **report)  # offered `queued`, which it takes
    assert answer.status_code == 200
    return runner, queued, answer.json()


async def _as_read(hub: Hub, runner: ProtocolRunner) -> dict[str, Any] | None:
    """The poll answer for what the runner holds, read from PostgreSQL."""
    return await queries.held_execution(hub.db, uuid.UUID(runner.runner_id or ""), await _epoch(hub, runner))


async def test_the_poll_after_a_complete_that_took_queued_work_is_handed_it_and_sends_nothing(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end report's offer assigned the execution, its claim reading it as the poll answers it: no note of a
    quiet renewal (which would answer 204), a note of what was handed over instead."""
    runner, queued, report = await _handed_on_complete(admin, client, "complete-then-queued")
    assert report == {"status": "COMPLETED"}  # a runner that did not ask for it (older ones) is not handed it
    with statements_sent(hub, monkeypatch) as sent:
        answer = await runner.poll(wait=QUIET)
    assert sent == []
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == queued
    assert answer.json()["execution"] == await _as_read(hub, runner)  # exactly what a read answers


async def test_a_woken_poll_answers_the_execution_its_assignment_handed_it_without_reading_it(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.online(admin, client, "woken-handed")
    workflow_id = await publish_workflow(admin, "woken-handed", SIMPLE_DEFINITION)
    reads = _count_reads(monkeypatch)
    waiting = await _idle_poll(hub, runner)
    execution_id = (await create_execution(admin, workflow_id))["id"]
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == execution_id
    assert reads == []
    assert answer.json()["execution"] == await _as_read(hub, runner)


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """The runners whose polls read the execution they hold from now on: with the runner's row (a full poll's
    `Liveness.sign`), or by itself (`queries.held_execution`, a woken poll's)."""
    reads: list[uuid.UUID] = []
    read, sign = queries.held_execution, Liveness.sign

    async def counted(db: Any, runner_id: uuid.UUID, *args: Any) -> Any:
        reads.append(runner_id)
        return await read(db, runner_id, *args)

    async def signed(self: Liveness, claims: RunnerClaims, *args: Any, **kwargs: Any) -> Sign:
        found = await sign(self, claims, *args, **kwargs)
        if found.held is not None:
            reads.append(claims.runner_id)
        return found

    monkeypatch.setattr(queries, "held_execution", counted)
    monkeypatch.setattr(Liveness, "sign", signed)
    return reads


async def test_an_execution_stopped_before_its_runner_polled_is_not_handed_to_the_poll(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner, queued, _ = await _handed_on_complete(admin, client, "handed-then-stopped")
    assert (await admin.post(f"/api/executions/{queued}/stop")).json()["execution"]["status"] == "STOPPED"
    await drain()
    assert (await runner.poll(wait=QUIET)).status_code == 204  # not the stopped execution


async def test_a_runner_changed_after_the_hand_over_polls_in_full_and_still_gets_its_execution(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, queued, _ = await _handed_on_complete(admin, client, "handed-then-changed")
    assert (await admin.patch(f"/api/runners/{runner.runner_id}", json={"labels": ["changed"]})).status_code == 200
    reads = _count_reads(monkeypatch)
    answer = await runner.poll(wait=QUIET)
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == queued
    assert reads == [uuid.UUID(runner.runner_id or "")]  # the change took the note away: the poll read


async def test_with_another_hub_process_the_poll_after_the_hand_over_reads(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several processes the runner's next poll may go to another one: no note is kept. The full poll reads the
    execution the runner holds with the runner's row, in one statement, answered as the execution's own read answers
    it."""
    monkeypatch.setattr(type(hub.dispatcher.wakeups), "alone", property(lambda _: False))
    runner, queued, _ = await _handed_on_complete(admin, client, "handed-two-processes")
    reads = _count_reads(monkeypatch)
    with statements_sent(hub, monkeypatch) as sent:
        answer = await runner.poll(wait=QUIET)
    assert answer.status_code == 200 and answer.json()["execution"]["id"] == queued
    assert reads == [uuid.UUID(runner.runner_id or "")]
    assert len(sent) == 1 and "FROM runners r" in sent[0], sent
    assert answer.json()["execution"] == await _as_read(hub, runner)


@pytest.mark.parametrize("change", ["disabled", "failed effect"])
async def test_after_a_complete_that_did_not_leave_the_runner_idle_the_next_poll_is_a_full_one(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A runner disabled while it ran, or an end report whose offer of work failed (the queue may hold work for
    it that nobody will offer): its next poll reads its row and looks at the queue."""
    runner = await ProtocolRunner.online(admin, client, f"complete-{change}")
    workflow_id = await publish_workflow(admin, f"complete-{change}", SIMPLE_DEFINITION)
    execution_id, attempt = await _ran(runner, admin, workflow_id)
    if change == "disabled":
        patched = await admin.patch(f"/api/runners/{runner.runner_id}", json={"enabled": False})
        assert patched.status_code == 200
    else:

        async def unavailable(runner_id: uuid.UUID, profile: RunnerProfile | None = None) -> Assignment | None:
            raise OSError("the queue went away")

        monkeypatch.setattr(hub.dispatcher, "runner_idle", unavailable)
    assert (await runner.complete(execution_id, attempt)).status_code == 200
    monkeypatch.undo()
    looks = _count_looks(hub, monkeypatch)
    with statements_sent(hub, monkeypatch) as sent:
        assert (await runner.poll(wait=QUIET)).status_code == 204
    assert sent  # the runner's row was read
    assert looks == ([] if change == "disabled" else [uuid.UUID(runner.runner_id or "")])


@pytest.mark.parametrize("processes", ["one", "several"])
async def test_an_end_report_taking_next_is_answered_the_execution_its_offer_assigned_as_a_poll_would(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch, processes: str
) -> None:
    """`takeNext`: the runner starts the execution its end report was given without polling for it, with several
    hub processes too (where no note is kept). The note its poll would have taken is used up, so a poll all the same
    reads what the runner holds, and the execution starts once."""
    if processes == "several":
        monkeypatch.setattr(type(hub.dispatcher.wakeups), "alone", property(lambda _: False))
    runner, queued, report = await _handed_on_complete(admin, client, f"take-next-{processes}", takeNext=True)
    assert report["status"] == "COMPLETED" and report["next"]["id"] == queued
    assert report["next"] == await _as_read(hub, runner)
    reads = _count_reads(monkeypatch)
    polled = await runner.poll(wait=QUIET)
    assert polled.status_code == 200 and polled.json()["execution"] == report["next"]
    assert reads == [uuid.UUID(runner.runner_id or "")]  # read: nothing was left to hand over
    assert (await runner.start(queued, report["next"]["attempt"])).status_code == 200


@pytest.mark.parametrize("wait", [0, QUIET])
async def test_an_end_report_taking_next_with_nothing_queued_answers_none_and_leaves_a_quiet_note(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch, wait: float
) -> None:
    """At once, or after waiting as a long poll that nothing woke."""
    name = f"take-next-nothing-{wait}"
    runner = await ProtocolRunner.online(admin, client, name)
    workflow_id = await publish_workflow(admin, name, SIMPLE_DEFINITION)
    execution_id, attempt = await _ran(runner, admin, workflow_id)
    report = await runner.complete(execution_id, attempt, takeNext=True, wait=wait)
    assert report.status_code == 200 and report.json() == {"status": "COMPLETED", "next": None}
    with statements_sent(hub, monkeypatch) as sent:
        assert (await runner.poll(wait=QUIET)).status_code == 204
    assert sent == []  # renewed quietly, as after any end report that left the runner idle


@pytest.mark.parametrize("processes", ["one", "several"])
async def test_an_end_report_that_waits_is_answered_the_execution_created_meanwhile_without_a_read(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch, processes: str
) -> None:
    """With `wait`, the report is a long poll too: the report's statement read the runner's row, so an execution
    created while it waits is handed to it by the create's claim, as to a waiting poll (with several hub processes
    too), and a heartbeat meanwhile is answered from it while the process is the only one."""
    if processes == "several":
        monkeypatch.setattr(type(hub.dispatcher.wakeups), "alone", property(lambda _: False))
    name = f"take-next-wait-{processes}"
    runner = await ProtocolRunner.online(admin, client, name)
    workflow_id = await publish_workflow(admin, name, SIMPLE_DEFINITION)
    execution_id, attempt = await _ran(runner, admin, workflow_id)
    runner_id = uuid.UUID(runner.runner_id or "")
    reads = _count_reads(monkeypatch)
    report = asyncio.create_task(runner.complete(execution_id, attempt, takeNext=True, wait=30))

    async def waiting() -> bool:
        return hub.dispatcher.wakeups.is_waiting(runner_id)

    await eventually(waiting, 5, "the runner's report to wait")
    answered_from_the_wait = hub.dispatcher.wakeups.idle_poll(runner_id, await _epoch(hub, runner)) is not None
    assert answered_from_the_wait is (processes == "one")
    created = (await create_execution(admin, workflow_id))["id"]
    answer = await asyncio.wait_for(report, 10)
    assert answer.status_code == 200 and answer.json()["next"]["id"] == created
    assert reads == []
    assert answer.json()["next"] == await _as_read(hub, runner)


async def test_a_busy_runner_s_heartbeats_after_a_full_one_send_nothing_until_a_stop_is_requested(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = await ProtocolRunner.online(admin, client, "beat-busy")
    workflow_id = await publish_workflow(admin, "beat-busy", SIMPLE_DEFINITION)
    execution_id = await running_execution(admin, runner, workflow_id)
    full = await runner.heartbeat()
    assert full.json() == {"status": "BUSY", "stopExecutionIds": [], "catalogueWanted": False}
    signed, samples = await _signs(hub, runner)
    with statements_sent(hub, monkeypatch) as sent:
        again = [await runner.heartbeat() for _ in range(3)]
    assert sent == [] and all(r.json() == full.json() for r in again)
    last, written = await _signs(hub, runner)  # still signs of life, each with its metrics
    assert last > signed and written == samples + 3
    assert (await admin.post(f"/api/executions/{execution_id}/stop")).status_code == 200
    await drain()  # the stop request's wake-up
    for _ in range(2):  # read each time while the stop is pending: a heartbeat asking for a stop leaves no note
        stopping = await runner.heartbeat()
        assert stopping.json() == {"status": "BUSY", "stopExecutionIds": [execution_id], "catalogueWanted": False}


async def test_heartbeats_between_short_executions_read_nothing_and_answer_the_runner_s_new_status(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end report that leaves the runner idle, and the claim that assigns it the next execution, read its row:
    they keep its heartbeat's note current (ONLINE, then BUSY)."""
    runner = await ProtocolRunner.online(admin, client, "beat-freed")
    workflow_id = await publish_workflow(admin, "beat-freed", SIMPLE_DEFINITION)
    execution_id = await running_execution(admin, runner, workflow_id)
    assert (await runner.heartbeat()).json()["status"] == "BUSY"
    assert (await runner.complete(execution_id, 1)).status_code == 200
    await drain()
    with statements_sent(hub, monkeypatch) as sent:
        idle = await runner.heartbeat()
    assert sent == [] and idle.json()["status"] == "ONLINE"
    second = await running_execution(admin, runner, workflow_id)
    with statements_sent(hub, monkeypatch) as sent:
        busy = await runner.heartbeat()
    assert sent == [] and busy.json() == {"status": "BUSY", "stopExecutionIds": [], "catalogueWanted": False}
    assert (await admin.post(f"/api/executions/{second}/stop")).status_code == 200
    await drain()
    assert (await runner.heartbeat()).json()["stopExecutionIds"] == [second]


async def test_a_busy_runner_s_heartbeat_is_refused_once_its_token_is_revoked_or_read_once_it_is_marked_offline(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await ProtocolRunner.online(admin, client, "beat-offline")
    workflow_id = await publish_workflow(admin, "beat-offline", SIMPLE_DEFINITION)
    await running_execution(admin, runner, workflow_id)
    assert (await runner.heartbeat()).json()["status"] == "BUSY"
    assert runner.runner_id is not None
    await backdate(hub, "runners", "last_heartbeat_at", runner.runner_id, hub.settings.runner_offline_seconds + 60)
    report = await hub.executions.check_stale(not_before=None)
    assert report.runners_offline >= 1 and await _status(hub, runner) == "OFFLINE"
    await drain()  # the mark's wake-up
    assert (await runner.heartbeat()).status_code == 200
    assert await _status(hub, runner) != "OFFLINE"  # a full heartbeat: back at once, not at the next write
    assert (await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")).status_code == 200
    await drain()
    assert (await runner.heartbeat()).status_code == 401
