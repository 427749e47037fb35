"""When a runner's poll may renew quietly (hub/dispatch/wakeups.py): only straight after a long poll of this process
that nothing woke, with the same token epoch, and while the last full poll is recent."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from exekra.hub.dispatch import wakeups
from exekra.hub.dispatch.wakeups import FULL_POLL_SECONDS, QUIET_GAP_SECONDS, QUIET_PRUNE_AT, Wakeups


class _Listener:
    def subscribe(self, *_: Any, **__: Any) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(wakeups.time, "monotonic", clock)
    return clock


def _wakeups() -> Wakeups:
    return Wakeups(_Listener(), db=None)  # type: ignore[arg-type]  # neither is used by the notes


def test_a_note_is_used_once_by_the_same_epoch_within_the_gap(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    assert hub.take_quiet(runner, 1) is None  # no long poll ended here
    hub.leave_quiet(runner, 1, read_at=clock.now)
    clock.now += QUIET_GAP_SECONDS / 2
    assert hub.take_quiet(runner, 1) == clock.now - QUIET_GAP_SECONDS / 2
    assert hub.take_quiet(runner, 1) is None  # used up: the renewal leaves its own when it ends quietly

    hub.leave_quiet(runner, 1, read_at=clock.now)
    assert hub.take_quiet(runner, 2) is None  # another token epoch: the secret was regenerated
    hub.leave_quiet(runner, 1, read_at=clock.now)
    clock.now += QUIET_GAP_SECONDS + 1
    assert hub.take_quiet(runner, 1) is None  # the runner did not come straight back


def test_a_full_poll_comes_at_least_every_full_poll_seconds(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    read_at = clock.now
    while True:  # each poll waits a second, the next comes a second after it
        clock.now += 1
        hub.leave_quiet(runner, 1, read_at)
        clock.now += 1
        if hub.take_quiet(runner, 1) is None:
            break
    assert clock.now - 2 - read_at <= FULL_POLL_SECONDS < clock.now - read_at  # the first renewal past it


def test_a_wake_up_of_the_runner_or_of_everyone_drops_its_note(clock: _Clock) -> None:
    hub, runner, other = _wakeups(), uuid.uuid4(), uuid.uuid4()
    hub.leave_quiet(runner, 1, clock.now)
    hub.leave_quiet(other, 1, clock.now)
    hub.notify(runner)  # work assigned to it, or its row changed, in this process or announced by another
    assert hub.take_quiet(runner, 1) is None and hub.take_quiet(other, 1) is not None
    hub.leave_quiet(other, 1, clock.now)
    hub.deliver(f"another-process:{other}")
    assert hub.take_quiet(other, 1) is None
    hub.leave_quiet(runner, 1, clock.now)
    hub.notify_all()  # a reconnection: what was announced meanwhile is lost
    assert hub.take_quiet(runner, 1) is None


def test_notes_of_runners_that_did_not_come_back_are_dropped(clock: _Clock) -> None:
    hub = _wakeups()
    gone = [uuid.uuid4() for _ in range(QUIET_PRUNE_AT - 1)]
    for runner in gone:
        hub.leave_quiet(runner, 1, clock.now)
    clock.now += QUIET_GAP_SECONDS + 1
    back = uuid.uuid4()
    hub.leave_quiet(back, 1, clock.now)  # the note past the threshold prunes
    assert len(hub._quiet) == 1 and hub.take_quiet(back, 1) is not None


def test_no_note_is_kept_or_used_while_another_hub_process_hears_wake_ups(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    hub.leave_quiet(runner, 1, clock.now)
    hub.hearers = 2  # counted: an assignment made there is announced here only if the runner's poll waits here
    assert hub.take_quiet(runner, 1) is None
    hub.leave_quiet(runner, 1, clock.now)
    hub.hearers = 1
    assert hub.take_quiet(runner, 1) is None  # none was kept meanwhile


def test_after_a_failed_effect_every_runner_s_next_poll_is_a_full_one(clock: _Clock) -> None:
    hub, runners = _wakeups(), [uuid.uuid4() for _ in range(3)]
    for runner in runners:
        hub.leave_quiet(runner, 1, clock.now)
    hub.end_quiet()
    assert all(hub.take_quiet(runner, 1) is None for runner in runners)
