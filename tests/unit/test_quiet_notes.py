"""When a runner's poll may renew quietly (hub/dispatch/wakeups.py): only straight after a long poll of this process
that nothing woke, with the same token epoch, and while the last full poll is recent; and when its heartbeat may be
answered from its waiting poll."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from exekra.hub.dispatch import wakeups
from exekra.hub.dispatch.handed import Handed
from exekra.hub.dispatch.wakeups import FULL_POLL_SECONDS, QUIET_GAP_SECONDS, QUIET_PRUNE_AT, PollSignal, Wakeups

DIGEST = "catalogue-digest"


class _Listener:
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()

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
    hub = Wakeups(_Listener(), db=None)  # type: ignore[arg-type]  # neither is used by the notes
    hub.hearers = 1  # counted: the only hub process
    return hub


def _vouched_poll(hub: Wakeups, runner: uuid.UUID, epoch: int = 1) -> PollSignal:
    """A long poll of the runner waiting here, its row read: idle."""
    poll = hub.register(runner)
    hub.vouch(poll, epoch, DIGEST)
    return poll


def test_a_note_is_used_once_by_the_same_epoch_within_the_gap(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    assert hub.take_quiet(runner, 1) is None  # no long poll ended here
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    clock.now += QUIET_GAP_SECONDS / 2
    assert hub.take_quiet(runner, 1) == (clock.now - QUIET_GAP_SECONDS / 2, DIGEST)
    assert hub.take_quiet(runner, 1) is None  # used up: the renewal leaves its own when it ends quietly

    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    assert hub.take_quiet(runner, 2) is None  # another token epoch: the secret was regenerated
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    clock.now += QUIET_GAP_SECONDS + 1
    assert hub.take_quiet(runner, 1) is None  # the runner did not come straight back


def test_a_full_poll_comes_at_least_every_full_poll_seconds(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    read_at = clock.now
    while True:  # each poll waits a second, the next comes a second after it
        clock.now += 1
        hub.leave_quiet(runner, _vouched_poll(hub, runner), read_at)
        clock.now += 1
        if hub.take_quiet(runner, 1) is None:
            break
    assert clock.now - 2 - read_at <= FULL_POLL_SECONDS < clock.now - read_at  # the first renewal past it


def test_a_wake_up_of_the_runner_or_of_everyone_drops_its_note(clock: _Clock) -> None:
    hub, runner, other = _wakeups(), uuid.uuid4(), uuid.uuid4()
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    hub.leave_quiet(other, _vouched_poll(hub, other), clock.now)
    hub.notify(runner)  # work assigned to it, or its row changed, in this process or announced by another
    assert hub.take_quiet(runner, 1) is None and hub.take_quiet(other, 1) is not None
    hub.leave_quiet(other, _vouched_poll(hub, other), clock.now)
    hub.deliver(f"another-process:{other}")
    assert hub.take_quiet(other, 1) is None
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    hub.notify_all()  # a reconnection: what was announced meanwhile is lost
    assert hub.take_quiet(runner, 1) is None


def test_notes_of_runners_that_did_not_come_back_are_dropped(clock: _Clock) -> None:
    hub = _wakeups()
    gone = [uuid.uuid4() for _ in range(QUIET_PRUNE_AT - 1)]
    for runner in gone:
        hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    clock.now += QUIET_GAP_SECONDS + 1
    back = uuid.uuid4()
    hub.leave_quiet(back, _vouched_poll(hub, back), clock.now)  # the note past the threshold prunes
    assert len(hub._quiet) == 1 and hub.take_quiet(back, 1) is not None


def test_no_note_is_kept_or_used_while_another_hub_process_hears_wake_ups(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    hub.hearers = 2  # counted: an assignment made there is announced here only if the runner's poll waits here
    assert hub.take_quiet(runner, 1) is None
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    hub.hearers = 1
    assert hub.take_quiet(runner, 1) is None  # none was kept meanwhile


def test_after_a_failed_effect_every_runner_s_next_poll_is_a_full_one(clock: _Clock) -> None:
    hub, runners = _wakeups(), [uuid.uuid4() for _ in range(3)]
    for runner in runners:
        hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    hub.end_quiet()
    assert all(hub.take_quiet(runner, 1) is None for runner in runners)


def test_a_heartbeat_is_answered_from_the_runner_s_one_idle_poll_not_woken_since() -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    poll = hub.register(runner)
    assert hub.idle_poll(runner, 1) is None  # its row not read yet
    hub.vouch(poll, 1, DIGEST)
    answer = hub.idle_poll(runner, 1)
    assert answer is poll and answer.digest == DIGEST
    assert hub.idle_poll(runner, 2) is None and hub.idle_poll(uuid.uuid4(), 1) is None  # another epoch, runner
    second = _vouched_poll(hub, runner)
    assert hub.idle_poll(runner, 1) is None  # two polls of one runner: not the usual case, read the row
    hub.unregister(runner, second)
    assert hub.idle_poll(runner, 1) is poll
    hub.notify(runner)  # work assigned, or the row changed: the poll looks again, the heartbeat reads
    assert hub.idle_poll(runner, 1) is None
    hub.unregister(runner, poll)
    assert hub.idle_poll(runner, 1) is None  # no poll waits


def test_no_heartbeat_is_answered_from_a_poll_after_a_failed_effect_or_with_another_hub_process() -> None:
    hub, runners = _wakeups(), [uuid.uuid4() for _ in range(3)]
    for runner in runners:
        _vouched_poll(hub, runner)
    hub.end_quiet()
    assert all(hub.idle_poll(runner, 1) is None for runner in runners)
    runner = uuid.uuid4()
    _vouched_poll(hub, runner)
    hub.hearers = 2
    assert hub.idle_poll(runner, 1) is None
    hub.hearers = 1
    assert hub.idle_poll(runner, 1) is None  # unvouched when the other process was counted


def test_a_poll_woken_before_its_vouch_answers_no_heartbeat() -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    poll = hub.register(runner)
    hub.notify(runner)  # between its read and its vouch: work assigned, the runner changed
    hub.vouch(poll, 1, DIGEST)
    assert hub.idle_poll(runner, 1) is None


def test_a_poll_that_lost_its_vouch_leaves_no_note(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    poll = _vouched_poll(hub, runner)
    hub.end_quiet()  # a failed effect while it waits
    hub.leave_quiet(runner, poll, clock.now)
    assert hub.take_quiet(runner, 1) is None
    poll = hub.register(runner)
    hub.hearers = 2
    hub.vouch(poll, 1, DIGEST)  # not vouched while another process is counted
    hub.hearers = 1
    assert hub.idle_poll(runner, 1) is None
    hub.leave_quiet(runner, poll, clock.now)
    assert hub.take_quiet(runner, 1) is None


def test_while_the_listen_connection_is_down_no_note_or_poll_answers(clock: _Clock) -> None:
    listener = _Listener()
    hub, runner = Wakeups(listener, db=None), uuid.uuid4()  # type: ignore[arg-type]
    poll = _vouched_poll(hub, runner)
    hub.leave_quiet(runner, poll, clock.now)
    listener.connected.clear()  # the count would see only the other processes
    assert hub.idle_poll(runner, 1) is None and hub.take_quiet(runner, 1) is None
    hub.vouch(poll, 1, DIGEST)
    hub.leave_quiet(runner, poll, clock.now)
    listener.connected.set()
    assert hub.take_quiet(runner, 1) is None  # none was kept meanwhile


def test_no_note_is_kept_before_the_processes_are_counted(clock: _Clock) -> None:
    hub, runner = Wakeups(_Listener(), db=None), uuid.uuid4()  # type: ignore[arg-type]
    assert not hub.alone and hub.hearers == 1  # an assignment is still announced when the poll waits elsewhere
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    assert hub.take_quiet(runner, 1) is None


def test_another_process_starting_ends_every_note_until_the_next_count(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    hub.deliver(hub.origin + ":" + wakeups.HELLO)  # its own: nothing changes
    assert hub.alone
    hub.deliver("another-process:" + wakeups.HELLO)
    assert not hub.alone and hub.hearers == 2
    assert hub.take_quiet(runner, 1) is None
    hub.hearers = 1  # counted again: alone
    hub.leave_quiet(runner, _vouched_poll(hub, runner), clock.now)
    assert hub.take_quiet(runner, 1) is not None


def _handed(execution_id: uuid.UUID, epoch: int = 1) -> Handed:
    return Handed(epoch, {"id": str(execution_id), "attempt": 1})


def test_an_execution_handed_over_with_no_poll_waiting_is_answered_once_by_the_same_epoch_within_the_gap(
    clock: _Clock,
) -> None:
    hub, runner, execution = _wakeups(), uuid.uuid4(), uuid.uuid4()
    hub.notify(runner, _handed(execution))
    assert hub.take_handed(runner, 2) is None  # another token: and the note is used up
    hub.notify(runner, _handed(execution))
    clock.now += QUIET_GAP_SECONDS + 1
    assert hub.take_handed(runner, 1) is None  # too late: the poll reads
    hub.notify(runner, _handed(execution))
    assert hub.take_handed(runner, 1) == {"id": str(execution), "attempt": 1}
    assert hub.take_handed(runner, 1) is None


def test_a_handed_execution_is_taken_back_by_another_wake_up_or_when_the_runner_lets_go_of_it() -> None:
    hub, runner, execution = _wakeups(), uuid.uuid4(), uuid.uuid4()
    hub.notify(runner, _handed(execution))
    hub.let_go(runner, uuid.uuid4())  # another execution: what was handed stays
    hub.let_go(uuid.uuid4(), execution)  # another runner
    assert hub.take_handed(runner, 1) is not None
    hub.notify(runner, _handed(execution))
    hub.let_go(runner, execution)
    assert hub.take_handed(runner, 1) is None
    hub.notify(runner, _handed(execution))
    hub.notify(runner)  # its row changed, say
    assert hub.take_handed(runner, 1) is None
    poll = hub.register(runner)
    hub.notify(runner, _handed(execution))
    assert poll.is_set() and poll.handed == _handed(execution) and hub.take_handed(runner, 1) is None  # to the poll
    hub.let_go(runner, execution)
    assert poll.handed is None


def test_with_several_processes_a_waiting_poll_is_handed_its_execution_but_no_note_is_kept() -> None:
    hub, runner, execution = _wakeups(), uuid.uuid4(), uuid.uuid4()
    hub.hearers = 2
    hub.notify(runner, _handed(execution))
    hub.hearers = 1
    assert hub.take_handed(runner, 1) is None
    hub.hearers = 2
    poll = hub.register(runner)
    hub.notify(runner, _handed(execution))
    assert poll.handed == _handed(execution)


@pytest.mark.parametrize("processes", [1, 2])
def test_an_end_report_s_watch_hands_over_what_its_offer_assigned_once_and_takes_the_note(processes: int) -> None:
    """`complete` with `takeNext` answers the execution assigned while its report was watched: with several hub
    processes too (no note is kept there, the watch holds it); the note for the runner's next poll is used up."""
    hub, runner, execution = _wakeups(), uuid.uuid4(), uuid.uuid4()
    hub.hearers = processes
    watch = hub.watch(runner)
    assert hub.hand_over(runner, watch, 1) is None  # nothing assigned
    hub.notify(runner, _handed(execution))
    assert hub.hand_over(runner, watch, 2) is None  # under another token
    assert hub.hand_over(runner, watch, 1) == {"id": str(execution), "attempt": 1}
    hub.unwatch(runner, watch)
    assert hub.take_handed(runner, 1) is None  # the runner took it from the answer, not from a poll


def test_an_end_report_s_watch_loses_what_was_handed_to_a_later_wake_up_or_when_the_runner_lets_go_of_it() -> None:
    hub, runner, execution = _wakeups(), uuid.uuid4(), uuid.uuid4()
    watch = hub.watch(runner)
    hub.notify(runner, _handed(execution))
    hub.let_go(runner, uuid.uuid4())  # another execution: what was handed stays
    assert hub.hand_over(runner, watch, 1) is not None
    hub.let_go(runner, execution)  # stopped or re-queued before the answer
    assert hub.hand_over(runner, watch, 1) is None
    hub.notify(runner, _handed(execution))
    hub.notify(runner)  # its row changed, say: the runner polls and reads
    assert hub.hand_over(runner, watch, 1) is None
    hub.notify(runner, _handed(execution))
    hub.notify_all()  # announcements may have been missed
    assert hub.hand_over(runner, watch, 1) is None
    assert not hub.is_waiting(runner)  # a watch is not a poll: an assignment made elsewhere is still announced


def test_an_announcement_hands_the_execution_to_the_runner_s_poll_or_report_waiting_in_this_process() -> None:
    """Another process's assignment carries the execution as its claim read it: the poll (or the end report) of the
    runner waiting here answers it without reading it; a poll under another token, or an announcement without it
    (too large, or by NOTIFY), reads."""
    sender, receiver, runner, execution = _wakeups(), _wakeups(), uuid.uuid4(), uuid.uuid4()
    receiver.hearers = 2
    handed = Handed(3, {"id": str(execution), "attempt": 1, "version": {"definition": {"steps": [{"a": "b:c"}]}}})
    poll = receiver.register(runner)
    receiver.deliver(sender.payload(runner, handed))
    assert poll.is_set() and poll.handed == handed
    watch = receiver.watch(runner)
    receiver.deliver(sender.payload(runner, handed))
    assert receiver.hand_over(runner, watch, 3) == handed.answer
    receiver.deliver(sender.payload(runner))  # by NOTIFY: the id only
    assert poll.handed is None and receiver.hand_over(runner, watch, 3) is None
    receiver.deliver(sender.payload(runner, handed).replace(":3:", ":x:"))  # unreadable: woken all the same
    assert poll.handed is None


def test_an_announcement_carries_no_execution_larger_than_the_limit() -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    large = Handed(1, {"id": "x", "version": {"definition": {"text": "a" * wakeups.HANDED_MAX_BYTES}}})
    assert hub.payload(runner, large) == hub.payload(runner) == f"{hub.origin}:{runner}"


def test_an_announcement_is_not_read_when_no_poll_of_the_runner_waits_here(monkeypatch: pytest.MonkeyPatch) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    hub.hearers = 2
    monkeypatch.setattr(wakeups.orjson, "loads", lambda _: pytest.fail("read an announcement nobody waits for"))
    hub.deliver(_wakeups().payload(runner, _handed(uuid.uuid4())))


def _full_heartbeat(hub: Wakeups, runner: uuid.UUID, epoch: int = 1, status: str = "BUSY") -> None:
    """A heartbeat that read the runner's row (watched from before the read) and found no stop requested."""
    watch = hub.watch_beat(runner)
    hub.leave_beat(runner, watch, epoch, status, DIGEST)
    hub.unwatch_beat(runner, watch)


def test_a_heartbeat_is_answered_from_the_last_full_one_s_note_by_the_same_epoch_while_its_read_is_recent(
    clock: _Clock,
) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    assert hub.beat(runner, 1) is None  # no full heartbeat here yet
    _full_heartbeat(hub, runner)
    for _ in range(3):  # not used up
        assert hub.beat(runner, 1) == ("BUSY", DIGEST)
    assert hub.beat(runner, 2) is None  # another token: and the note is gone
    assert hub.beat(runner, 1) is None
    _full_heartbeat(hub, runner)
    clock.now += FULL_POLL_SECONDS + 1
    assert hub.beat(runner, 1) is None


@pytest.mark.parametrize("event", ["woken", "let go", "failed effect", "everyone woken", "another process"])
def test_whatever_changes_the_runner_drops_its_heartbeat_note(clock: _Clock, event: str) -> None:
    hub, runner, other = _wakeups(), uuid.uuid4(), uuid.uuid4()
    _full_heartbeat(hub, runner)
    _full_heartbeat(hub, other)
    if event == "woken":  # a stop requested, work assigned, a change to its row
        hub.notify(runner)
    elif event == "let go":  # the execution it held ended or was re-queued: its status changes
        hub.let_go(runner, uuid.uuid4())
    elif event == "failed effect":
        hub.end_quiet()
    elif event == "everyone woken":
        hub.notify_all()
    else:
        hub.hearers = 2
    assert hub.beat(runner, 1) is None
    assert (hub.beat(other, 1) is None) == (event not in ("woken", "let go"))


@pytest.mark.parametrize("event", ["woken", "let go", "failed effect"])
def test_a_change_during_the_heartbeat_s_read_leaves_no_note(clock: _Clock, event: str) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    watch = hub.watch_beat(runner)  # before the read
    if event == "woken":  # a stop requested while the row was being read
        hub.notify(runner)
    elif event == "let go":  # its execution ended (by its report, or a stale rule) while the row was being read
        hub.let_go(runner, uuid.uuid4())
    else:
        hub.end_quiet()
    hub.leave_beat(runner, watch, 1, "BUSY", DIGEST)
    hub.unwatch_beat(runner, watch)
    assert hub.beat(runner, 1) is None


def test_an_end_report_s_own_let_go_does_not_keep_it_from_leaving_an_idle_note(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    watch = hub.watch(runner)  # the report's watch, before its statement
    hub.let_go(runner, uuid.uuid4())  # its effects: the runner let go of its execution
    hub.leave_idle(runner, watch, 1, DIGEST)
    hub.unwatch(runner, watch)
    assert hub.beat(runner, 1) == ("ONLINE", DIGEST)


def test_no_heartbeat_note_is_kept_with_another_process_and_notes_of_runners_gone_quiet_are_dropped(
    clock: _Clock,
) -> None:
    hub = _wakeups()
    hub.hearers = 2
    runner = uuid.uuid4()
    _full_heartbeat(hub, runner)
    hub.hearers = 1
    assert hub.beat(runner, 1) is None
    gone = [uuid.uuid4() for _ in range(QUIET_PRUNE_AT - 1)]
    for r in gone:
        _full_heartbeat(hub, r)
    clock.now += FULL_POLL_SECONDS + 1
    _full_heartbeat(hub, runner)  # the notes past their time are dropped when the bound is reached
    assert len(hub._beats) == 1 and hub.beat(runner, 1) == ("BUSY", DIGEST)


def test_an_assignment_under_the_noted_epoch_keeps_the_heartbeat_note_busy_and_an_idle_end_report_leaves_one(
    clock: _Clock,
) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    _full_heartbeat(hub, runner, status="ONLINE")
    hub.notify(runner, Handed(1, {"id": str(uuid.uuid4())}))  # assigned by a claim that found epoch 1
    assert hub.beat(runner, 1) == ("BUSY", DIGEST)
    hub.notify(runner, Handed(2, {"id": str(uuid.uuid4())}))  # another epoch than the note's: read again
    assert hub.beat(runner, 1) is None and hub.beat(runner, 2) is None
    watch = hub.watch(runner)  # an end report that left the runner idle, nothing woke it meanwhile
    hub.leave_idle(runner, watch, 2, DIGEST)
    hub.unwatch(runner, watch)
    assert hub.beat(runner, 2) == ("ONLINE", DIGEST)
    clock.now += FULL_POLL_SECONDS + 1  # an assignment keeps the note's read time: the row is read again in time
    hub.notify(runner, Handed(2, {"id": str(uuid.uuid4())}))
    assert hub.beat(runner, 2) is None


def test_a_heartbeat_answered_from_the_runner_s_idle_poll_drops_its_heartbeat_note(clock: _Clock) -> None:
    hub, runner = _wakeups(), uuid.uuid4()
    _full_heartbeat(hub, runner, status="ONLINE")  # a heartbeat between two polls
    poll = _vouched_poll(hub, runner)
    assert hub.idle_poll(runner, 1) is poll
    assert runner not in hub._beats  # no memory kept twice for an idle runner
    hub.unregister(runner, poll)
    assert hub.beat(runner, 1) is None
