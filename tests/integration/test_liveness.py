"""Signs of life are not transactions (issue 17): heartbeats and polls are kept in memory by each hub process and
written once a second in one statement; the token check and the return from OFFLINE stay immediate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from exekra.hub import lifecycle
from exekra.hub.auth.security import RunnerClaims
from exekra.hub.context import Hub
from exekra.hub.runners.liveness import Liveness

from .protocol import ProtocolRunner


async def _runner(admin: httpx.AsyncClient, client: httpx.AsyncClient, name: str) -> ProtocolRunner:
    runner = await ProtocolRunner.register(admin, client, name)
    assert (await runner.auth()).status_code == 200
    return runner


def _claims(hub: Hub, runner: ProtocolRunner) -> RunnerClaims:
    claims = hub.runner_tokens.verify(runner.token or "")
    assert claims is not None
    return claims


async def _row(hub: Hub, runner: ProtocolRunner) -> tuple[str, datetime | None, float | None, int]:
    async with hub.db.session() as session:
        row = (
            await session.execute(
                text(
                    "SELECT status, last_heartbeat_at, cpu_percent,"
                    " (SELECT count(*) FROM runner_metrics m WHERE m.runner_id = r.id) AS samples"
                    " FROM runners r WHERE id = :id"
                ),
                {"id": uuid.UUID(runner.runner_id)},
            )
        ).one()
    return row.status, row.last_heartbeat_at, row.cpu_percent, row.samples


@pytest.fixture
def written_when_flushed(hub: Hub) -> Iterator[Liveness]:
    """The hub's signs of life written only when the test flushes them: the running hub's once-a-second write
    would race with the test's own (a sign the test means to hold could be written before it looks)."""
    running = hub.executions.liveness
    hub.executions.liveness = Liveness(hub.db)  # not started: no loop of its own
    try:
        yield hub.executions.liveness
    finally:
        hub.executions.liveness = running


@pytest.mark.usefixtures("written_when_flushed")
async def test_heartbeats_and_polls_are_written_once_in_one_statement(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await _runner(admin, client, "steady")
    assert (await runner.heartbeat()).status_code == 200  # OFFLINE → ONLINE at once: a state change
    await hub.executions.liveness.flush()
    status, seen, _, samples = await _row(hub, runner)
    assert status == "ONLINE" and seen is not None and samples == 1

    for cpu in (10.0, 20.0, 30.0):
        assert (await runner.heartbeat(cpuPercent=cpu)).status_code == 200
    assert (await runner.poll()).status_code == 204
    assert hub.executions.liveness.pending == 1
    assert (await _row(hub, runner))[1:] == (seen, 5.0, 1)  # nothing written yet

    assert await hub.executions.liveness.flush() == 1
    status, later, cpu_now, samples = await _row(hub, runner)
    assert later is not None and later > seen and cpu_now == 30.0 and samples == 4
    assert hub.executions.liveness.pending == 0 and await hub.executions.liveness.flush() == 0


@pytest.mark.usefixtures("written_when_flushed")
async def test_a_revoked_token_is_refused_at_once_and_its_pending_sign_is_not_written(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await _runner(admin, client, "revoked")
    assert (await runner.heartbeat()).status_code == 200
    await hub.executions.liveness.flush()
    assert (await runner.heartbeat(cpuPercent=99.0)).status_code == 200  # pending
    assert (await admin.post(f"/api/runners/{runner.runner_id}/regenerate-secret")).status_code == 200
    assert (await runner.heartbeat()).status_code == 401
    assert (await runner.poll()).status_code == 401
    await hub.executions.liveness.flush()
    status, _, cpu, samples = await _row(hub, runner)
    assert status == "OFFLINE" and cpu == 5.0 and samples == 1  # the old token's sign changed nothing


async def test_an_offline_runner_is_back_online_at_once_without_waiting_for_the_write(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await _runner(admin, client, "returning")
    assert (await runner.heartbeat()).status_code == 200
    await hub.executions.liveness.flush()
    async with hub.db.transaction() as session:
        await session.execute(text("UPDATE runners SET status = 'OFFLINE' WHERE id = :id"), {"id": runner.runner_id})
    assert (await runner.poll()).status_code == 204
    assert (await _row(hub, runner))[0] == "ONLINE"


@pytest.mark.usefixtures("written_when_flushed")  # and puts the running hub's back when the test is done
async def test_a_crash_loses_at_most_the_last_flush_period_and_marks_no_runner_offline(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runner = await _runner(admin, client, "survivor")
    assert (await runner.heartbeat()).status_code == 200
    await hub.executions.liveness.flush()
    assert (await runner.heartbeat()).status_code == 200
    hub.executions.liveness = Liveness(hub.db)  # the process died: its pending sign is gone
    hub.settings.runner_offline_seconds, offline = 2, hub.settings.runner_offline_seconds
    try:
        report = await hub.executions.check_stale(not_before=None)
    finally:
        hub.settings.runner_offline_seconds = offline
    assert report.runners_offline == 0 and (await _row(hub, runner))[0] == "ONLINE"


async def test_two_processes_writing_the_same_runners_at_once_neither_deadlock_nor_lose_a_sample(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    runners = [await _runner(admin, client, f"shared-{i}") for i in range(20)]
    for runner in runners:
        assert (await runner.heartbeat()).status_code == 200  # each ONLINE
    await hub.executions.liveness.flush()
    first, second = Liveness(hub.db), Liveness(hub.db)  # two hub processes behind one load balancer
    for round_ in range(5):
        for i, runner in enumerate(runners):
            # The same runners, each process in its own order.
            await first.sign(_claims(hub, runner), {"cpu_percent": float(round_)})
            await second.sign(_claims(hub, runners[-1 - i]), {"cpu_percent": float(round_)})
        written = await asyncio.wait_for(asyncio.gather(first.flush(), second.flush()), 30)
        # Neither waits for the other: a row the other holds is skipped, and written by the next flush.
        while first.pending or second.pending:
            written += await asyncio.wait_for(asyncio.gather(first.flush(), second.flush()), 30)
        assert sum(written) == 40
    async with hub.db.session() as session:
        samples = (await session.execute(text("SELECT count(*) FROM runner_metrics"))).scalar_one()
    assert samples == 20 * 5 * 2 + 20  # every heartbeat's sample, the first ones included


async def test_a_clean_stop_writes_what_is_held(admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub) -> None:
    runner = await _runner(admin, client, "leaving")
    assert (await runner.heartbeat()).status_code == 200
    liveness = Liveness(hub.db, interval=3600)
    await liveness.start()
    await liveness.sign(_claims(hub, runner), {"cpu_percent": 42.0})
    await liveness.stop()
    assert liveness.pending == 0 and (await _row(hub, runner))[2] == 42.0


async def test_a_write_skips_a_runner_whose_row_a_state_change_holds_and_writes_it_next_time(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub
) -> None:
    busy, free = await _runner(admin, client, "locked"), await _runner(admin, client, "unlocked")
    for runner in (busy, free):
        assert (await runner.heartbeat()).status_code == 200
    await hub.executions.liveness.flush()
    liveness = Liveness(hub.db)
    await liveness.sign(_claims(hub, busy), {"cpu_percent": 77.0})
    await liveness.sign(_claims(hub, free), {"cpu_percent": 66.0})
    async with hub.db.transaction() as session:  # a transition holding the runner's row, as `complete` does
        await session.execute(text("SELECT 1 FROM runners WHERE id = :id FOR UPDATE"), {"id": busy.runner_id})
        assert await asyncio.wait_for(liveness.flush(), 10) == 1  # did not wait for the lock
        assert liveness.pending == 1
    assert (await _row(hub, busy))[2:] == (5.0, 1) and (await _row(hub, free))[2:] == (66.0, 2)
    assert await liveness.flush() == 1 and liveness.pending == 0
    assert (await _row(hub, busy))[2:] == (77.0, 2)


@pytest.mark.usefixtures("written_when_flushed")
async def test_a_flush_waits_for_the_write_in_flight_so_that_what_it_returns_after_is_written(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stale checks flush first and then look at the rows: a write still in flight would be missed."""
    runner = await _runner(admin, client, "flush-in-flight")
    assert (await runner.heartbeat()).status_code == 200
    await hub.executions.liveness.flush()
    _, seen, _, _ = await _row(hub, runner)
    assert (await runner.heartbeat(cpuPercent=42.0)).status_code == 200  # pending
    writing, go_on = asyncio.Event(), asyncio.Event()
    record = lifecycle.record_signs_of_life

    async def slow(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        await go_on.wait()
        return await record(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "record_signs_of_life", slow)
    in_flight = asyncio.create_task(hub.executions.liveness.flush())  # the loop's write, say
    await asyncio.wait_for(writing.wait(), 5)
    second = asyncio.create_task(hub.executions.liveness.flush())  # nothing held: it waits for the one in flight
    await asyncio.sleep(0.05)
    assert not second.done()
    go_on.set()
    assert await asyncio.wait_for(in_flight, 5) == 1 and await asyncio.wait_for(second, 5) == 0
    _, later, cpu, _ = await _row(hub, runner)
    assert later is not None and seen is not None and later > seen and cpu == 42.0
