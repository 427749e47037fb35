"""Waiting for a key's event (hub/waiters.py): woken, timed out, or cancelled with the waiting task."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from exekra.hub.waiters import Waiters


async def test_a_wait_returns_true_when_notified_and_false_when_its_time_runs_out() -> None:
    waiters = Waiters()
    key = uuid.uuid4()
    event = waiters.register(key)
    waiting = asyncio.create_task(waiters.wait(event, 30))
    await asyncio.sleep(0)  # the task is waiting
    waiters.notify(key)
    assert await asyncio.wait_for(waiting, 5) is True

    quiet = waiters.register(uuid.uuid4())
    assert await waiters.wait(quiet, 0.01) is False


async def test_cancelling_the_waiting_task_cancels_the_wait_instead_of_ending_it_as_a_timeout() -> None:
    # A poll whose client went away, or a hub shutting down, cancels the request's task: the wait must not
    # swallow that as if its time had run out.
    waiters = Waiters()
    event = waiters.register(uuid.uuid4())
    waiting = asyncio.create_task(waiters.wait(event, 30))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
