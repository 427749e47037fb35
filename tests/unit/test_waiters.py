"""Waiting for a key's signal (hub/waiters.py): woken, timed out, or cancelled with the waiting task."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from exekra.hub.waiters import Signal, Waiters


async def test_a_wait_returns_true_when_notified_and_false_when_its_time_runs_out() -> None:
    waiters = Waiters()
    key = uuid.uuid4()
    signal = waiters.register(key)
    waiting = asyncio.create_task(signal.wait(30))
    await asyncio.sleep(0)  # the task is waiting
    waiters.notify(key)
    assert await asyncio.wait_for(waiting, 5) is True

    quiet = waiters.register(uuid.uuid4())
    assert await quiet.wait(0.01) is False
    waiters.notify_all()
    assert quiet.is_set() and await quiet.wait(0) is True  # set before the wait: no waiting at all


async def test_cancelling_the_waiting_task_cancels_the_wait_instead_of_ending_it_as_a_timeout() -> None:
    # A poll whose client went away, or a hub shutting down, cancels the request's task: the wait must not
    # swallow that as if its time had run out.
    waiters = Waiters()
    signal = waiters.register(uuid.uuid4())
    waiting = asyncio.create_task(signal.wait(30))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await signal.wait(0.01) is False  # the signal can be waited on again


async def test_a_cleared_signal_waits_again_and_without_seconds_waits_until_set() -> None:
    signal = Signal()
    signal.set()
    signal.clear()
    waiting = asyncio.create_task(signal.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    signal.set()
    assert await asyncio.wait_for(waiting, 5) is True


async def test_a_signal_has_one_waiting_task_at_a_time() -> None:
    signal = Signal()
    first = asyncio.create_task(signal.wait(30))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one waiting task"):
        await signal.wait(1)
    signal.set()
    assert await first is True


async def test_a_keys_waiters_are_one_signal_or_a_set_and_each_is_woken_until_unregistered() -> None:
    waiters = Waiters()
    key, other = uuid.uuid4(), uuid.uuid4()
    first, second, third = waiters.register(key), waiters.register(key), waiters.register(key)
    alone = waiters.register(other)
    assert waiters.held == 0  # registered, nobody waiting on them yet
    waiters.unregister(key, second)
    waiters.notify(key)
    assert first.is_set() and third.is_set() and not second.is_set() and not alone.is_set()
    waiters.unregister(key, first)
    third.clear()
    waiters.notify(key)  # the one left is woken alone
    assert third.is_set() and not alone.is_set()
    waiters.unregister(key, third)
    waiters.unregister(key, third)  # twice: nothing to do
    assert not waiters.is_waiting(key) and waiters.is_waiting(other)
    waiters.notify_all()
    assert alone.is_set()


async def test_only_signals_a_task_waits_on_count_as_held() -> None:
    """What `exekra_held_requests{kind="long_poll"}` counts: a poll registered and still reading is not held."""
    waiters = Waiters()
    key = uuid.uuid4()
    registered, waited = waiters.register(key), waiters.register(key)
    task = asyncio.create_task(waited.wait(5))
    await asyncio.sleep(0)
    assert (waiters.held, waited.held, registered.held) == (1, True, False)
    waiters.notify(key)
    assert await task is True
    assert waiters.held == 0
