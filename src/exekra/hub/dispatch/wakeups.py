"""Long-poll wake-ups: a runner's pending poll wakes the moment work is assigned to it, in any hub process.

The process that makes an assignment wakes its own waiting polls directly, after the commit. The other hub
processes hear of it on `CHANNEL`, announced once the claim has committed:

- while the queue is in Redis mode, by Redis pub/sub, sent by the script that records the assignment in the
  queue (`RedisQueue.mark_assigned`): no round trip of its own, and no work for PostgreSQL;
- otherwise by a PostgreSQL `NOTIFY`. PostgreSQL makes every listening backend read each notification in a
  transaction of its own, whatever its channel, so each one costs a transaction per hub process
  (bench/RESULTS.md, 2026-12-04 15:04): this is why Redis carries them when it can. The `NOTIFY` is also sent
  when the script fails, and when fewer processes received the publish than listen on PostgreSQL (`hearers`):
  a process cut off from Redis, or whose Redis user may not subscribe, still hears every wake-up.

Every process hears both: its `Listener` and a Redis subscription of its own (`hear_redis`). Each reconnects by
itself and then wakes every poll of its process, which looks again: what was sent while it was down is lost. A
hub that dies between the commit and the announcement leaves the runner's long poll to end by its own timeout:
its next poll finds the execution it holds.

**Quiet renewals.** A long poll that ended by its timeout, nothing having happened to its runner, leaves a note
(`quiet`); the runner's next poll, if it comes straight back to this process, renews the wait without reading
the runner's row or looking at the queue: it only records the sign of life in memory (`Liveness.renew`). Every
wake-up of the runner drops the note, so what a full poll would have found is found by a full poll: work assigned
to it, and a change to its row that its polls must see (its token revoked, the runner deleted, changed or marked
OFFLINE, a new declaration: `Effects.wakes_runner`). Work queued meanwhile is matched with the runner by the
create's claim or the sweeper (both read the idle runners from PostgreSQL), which wakes it; an effect that failed
drops every note (`end_quiet`), so the polls' own look is the safety net again, as it was before the notes.

A runner's end report leaves the same note when it left the runner idle and enabled, and the queue, offered to the
runner then, gave it nothing: the report's statement read the runner's row as a full poll would (`watch`,
`leave_idle`).

**Executions handed over.** The claim that assigns an execution reads it as the runner's poll answers it
(`dispatch.handed`), and its wake-up hands it to the runner's poll waiting here, which answers it without reading it
again. A runner with no poll waiting here at that moment (busy sending its end report, say) finds it in a note
(`take_handed`) at its next poll, which then reads nothing either: the claim read the runner's row (its token epoch)
and locked it. Any other wake-up of the runner takes the execution back from the poll and drops the note, and so does
the runner letting go of the execution (`let_go`: it was stopped or re-queued before the runner took it), so such a
poll reads what it holds, as before. An announcement through Redis carries the execution too (up to
`HANDED_MAX_BYTES`): the process where the runner's poll waits answers it without reading it.

**Heartbeats answered from the poll.** While the runner's long poll waits here, vouched for by the runner's row as
its full poll read it (idle and enabled, this token epoch; `Wakeups.vouch`) and not woken since, its heartbeat
reads nothing either (`idle_poll`): an idle runner has no stop to carry out, its status is ONLINE (marking it
OFFLINE wakes the poll), and the catalogue digest the hub holds is the one that read found (a new declaration
wakes the poll too). The poll's signal keeps the epoch and the digest (two slots; the digest string interned, one
for every runner of the same catalogue); a quiet renewal carries them over from its note.

**Heartbeats answered from the last full one.** A heartbeat that reads the runner's row (no poll of it waits here:
the runner is busy, or between two polls) and finds no stop requested leaves a note (`leave_beat`): its next
heartbeats, under the same token epoch, are answered from it (`beat`) with the status and catalogue digest it read and
no stop, and read nothing, until the runner is woken or let go of an execution: a stop requested (`REQUEST_STOP` wakes
the runner), the runner freed (its status changes), or any change to its row that wakes its polls. The heartbeat
watches the runner from before its read (`watch_beat`), so that a change committed meanwhile leaves no note. Two reads of
the runner's row keep the note current instead: the claim that assigns it work (the note then says BUSY, under the
epoch the claim found) and an end report that leaves it idle (`leave_idle`: ONLINE, with the digest it read).

Notes are kept, and heartbeats answered from polls or notes, only while this process is the only hub process (`hearers`,
counted every `HEARERS_SECONDS`, first when the process starts: none is kept before) and its LISTEN connection is up
(`alone`: while it is down, the count sees only the others). A process that starts announces itself (`HELLO`), and
every other one then keeps no note until its next count: a note of a process that had not counted the newcomer yet
could otherwise outlive a change made in the newcomer (an execution handed over, then run and ended there). With
several, an assignment or a change made in another process is announced here only when the runner's poll does not
wait there, and a lost announcement would leave a note standing: every poll and heartbeat is then a
full one. A process that is not alone (it has not counted yet, or its LISTEN connection is down, so that the
others do not count it) also announces every wake-up of a runner whose row it changed (`Effects.wakes_runner`): a
process that does not know of it drops its notes of that runner all the same. Counting another process, and a failed
effect or effects cut short (`end_quiet`), also take the vouch away from the polls waiting then, and such a poll
leaves no note. A note is used only within `QUIET_GAP_SECONDS` of the poll that left
it, and a full poll comes at least every `FULL_POLL_SECONDS`: a wake-up lost all the same (none is known) would hide
a change from quiet renewals and heartbeats for at most that long plus one poll's wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import text

from exekra.db.session import Database
from exekra.hub.dispatch.handed import Handed, answer_for
from exekra.hub.errors import TRANSIENT_ERRORS
from exekra.hub.listener import APPLICATION_NAME, Listener
from exekra.hub.redis_client import redis_client
from exekra.hub.runners.models import RunnerStatus
from exekra.hub.waiters import Signal, Waiters

log = logging.getLogger(__name__)
N = TypeVar("N")

CHANNEL = "exekra_wakeup"
KEEPALIVE_SECONDS = 10.0  # a quiet subscription asks Redis this often whether the connection still works
RECONNECT_MAX_SECONDS = 1.0  # Redis mode resumes within a probe of Redis's return: what is published before the
# subscription is back reaches this process's polls when it resubscribes and wakes them all
HEARERS_SECONDS = 5.0  # how often the number of hub processes listening on PostgreSQL is counted
QUIET_GAP_SECONDS = 5.0  # a runner's next poll renews quietly only if it comes within this time of the last one
FULL_POLL_SECONDS = 120.0  # and only if its last full poll (the runner's row read) is younger than this; so too a
# heartbeat answered from the note of the last full one
QUIET_PRUNE_AT = 1024  # notes kept before those past their gap are dropped (runners that did not come back)
HANDED_MAX_BYTES = 64 * 1024  # an execution handed over in an announcement at most this large (its definition)
HELLO = "hello"  # announced by a hub process that starts (`origin:hello`): the others keep no note until they count
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_LISTENERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"
)


class HandedSignal(Signal):
    """A signal that a wake-up may hand the execution it assigned to the runner, as the runner's poll answers it."""

    __slots__ = ("handed",)

    def __init__(self) -> None:
        super().__init__()
        self.handed: Handed | None = None


class PollSignal(HandedSignal):
    """A runner's long poll: what it waits on, and, once vouched for, the token epoch and catalogue digest of the
    runner's row as its poll read it, idle."""

    __slots__ = ("digest", "epoch")

    def __init__(self) -> None:
        super().__init__()
        self.epoch: int | None = None  # None: not vouched for (the row not read yet, not idle, or `end_quiet`)
        self.digest: str | None = None


@dataclass(frozen=True, slots=True)
class Watch:
    """A runner watched while its end report frees it (`Wakeups.watch`), or while its heartbeat reads its row
    (`Wakeups.watch_beat`): a signal that every wake-up of the runner sets, and every `end_quiet`, with the execution
    an assignment's wake-up handed over, and when the watch began (`time.monotonic()`: before the statement read the
    runner's row)."""

    signal: HandedSignal
    began: float


def _shared(digest: str | None) -> str | None:
    """A catalogue digest as kept in memory: one string for every runner of the same catalogue, however many polls
    and notes hold it."""
    return None if digest is None else sys.intern(digest)


class _Notes(dict[uuid.UUID, N]):
    """Notes by runner. Once they reach a bound, those that can no longer be used (`at` of the note older than
    `usable` seconds: runners that did not come back) are dropped, and the bound is twice what is left."""

    def __init__(self, at: Callable[[N], float], usable: float) -> None:
        super().__init__()
        self.at = at
        self.usable = usable
        self.prune_at = QUIET_PRUNE_AT

    def put(self, runner_id: uuid.UUID, note: N, now: float) -> None:
        self[runner_id] = note
        if len(self) >= self.prune_at:
            gone = now - self.usable
            for key in [key for key, kept in self.items() if self.at(kept) < gone]:
                del self[key]
            self.prune_at = max(QUIET_PRUNE_AT, 2 * len(self))


class Wakeups(Waiters):
    """This process's runners waiting in a long poll, by runner id."""

    def __init__(self, listener: Listener, db: Database) -> None:
        super().__init__()
        self.db = db
        self._listening = listener.connected  # set while this process hears PostgreSQL's announcements
        self.origin = uuid.uuid4().hex  # tells this process's announcements from other processes'
        # Quiet renewals: runner → (token epoch, when its last full poll read its row, when its last poll ended, the
        # catalogue digest that read found).
        self._quiet: _Notes[tuple[int, float, float, str | None]] = _Notes(lambda n: n[2], QUIET_GAP_SECONDS)
        # Heartbeats answered from memory: runner → (token epoch, when its row was last read, the runner's status and
        # catalogue digest that read found, no stop requested).
        self._beats: _Notes[tuple[int, float, str, str | None]] = _Notes(lambda n: n[1], FULL_POLL_SECONDS)
        # Executions handed over with no poll of their runner waiting here: runner → (execution, when assigned).
        self._handed: _Notes[tuple[Handed, float]] = _Notes(lambda n: n[1], QUIET_GAP_SECONDS)
        # Runners whose end report is being recorded (`watch`): woken like polls, never counted as polls.
        self._watching = Waiters()
        # Heartbeats reading their runner's row (`watch_beat`): woken like polls, and when the runner lets go of work.
        self._beating = Waiters()
        self._hearers = 0  # not counted yet: not alone
        listener.subscribe(CHANNEL, self.deliver, on_connect=self.notify_all)

    @property
    def alone(self) -> bool:
        """Whether notes may be kept and heartbeats answered from polls: this is the only hub process, and it hears
        announcements (while its LISTEN connection is down, the count sees only the others)."""
        return self._hearers == 1 and self._listening.is_set()

    @property
    def hearers(self) -> int:
        """Hub processes that must hear an announcement: those listening on PostgreSQL, this one included."""
        return max(1, self._hearers)

    @hearers.setter
    def hearers(self, counted: int) -> None:
        self._hearers = max(1, counted)
        if self._hearers > 1:
            self.end_quiet()  # and `leave_quiet` keeps none while there are several

    def register(self, key: uuid.UUID) -> PollSignal:
        """Register the runner's long poll before its row is read (see `Waiters.register`)."""
        signal = PollSignal()
        self.add(key, signal)
        return signal

    def idle_poll(self, runner_id: uuid.UUID, epoch: int) -> PollSignal | None:
        """The runner's one long poll waiting here, if its row showed it idle under token `epoch` and nothing has
        woken the poll since (see the module's docstring); None: a heartbeat reads the row. The poll answering, the
        note of the runner's last full heartbeat is dropped: it would only take memory while the runner is idle."""
        if not self.alone:
            return None
        waiting = self._signals.get(runner_id)
        if isinstance(waiting, PollSignal) and waiting.epoch == epoch and not waiting.is_set():
            self._beats.pop(runner_id, None)
            return waiting
        return None

    def remembered(self, runner_id: uuid.UUID, epoch: int) -> tuple[str, str | None] | None:
        """What the runner's heartbeat under token `epoch` may answer without reading its row: its status and
        catalogue digest, with no stop to carry out, from its idle poll waiting here (`idle_poll`) or from the note
        of its last full heartbeat (`beat`); None: the heartbeat reads the row."""
        poll = self.idle_poll(runner_id, epoch)
        return (RunnerStatus.ONLINE.value, poll.digest) if poll is not None else self.beat(runner_id, epoch)

    def notify(self, key: uuid.UUID, handed: Handed | None = None) -> None:
        """Wake the runner's polls and the watch of its end report in this process, handing them `handed` (the
        execution just assigned to the runner) or taking back what an earlier wake-up handed them; make its next poll
        a full one, or one that is handed `handed` (only while this process is alone, as other notes), and its next
        heartbeat a full one; unless the runner is `handed` work under the epoch of its heartbeat's note, which then
        says BUSY."""
        self._quiet.pop(key, None)
        beat = self._beats.pop(key, None)
        if handed is not None and beat is not None and beat[0] == handed.epoch and self.alone:
            # Assigned: the claim found the runner under that epoch and made it BUSY, with no stop requested yet.
            self._note_beat(key, handed.epoch, beat[1], RunnerStatus.BUSY, beat[3])
        self._handed.pop(key, None)
        self._beating.notify(key)
        for signal in self._handed_signals(key):
            signal.handed = handed
            signal.set()
        if handed is not None and not self.is_waiting(key) and self.alone:
            self._note_handed(key, handed)

    def _handed_signals(self, key: uuid.UUID) -> Iterator[HandedSignal]:
        """The runner's polls and watches in this process (every signal of both is a `HandedSignal`)."""
        for signal in (*self.of(key), *self._watching.of(key)):
            assert isinstance(signal, HandedSignal)
            yield signal

    def notify_all(self) -> None:
        self._quiet.clear()
        self._beats.clear()
        self._handed.clear()
        self._beating.notify_all()
        for signal in (*self.signals(), *self._watching.signals()):
            if isinstance(signal, HandedSignal):  # every one here is
                signal.handed = None
            signal.set()

    def end_quiet(self) -> None:
        """Make every runner's next poll and heartbeat here a full one (a runner being freed leaves no note)."""
        self._quiet.clear()
        self._beats.clear()
        self._handed.clear()
        self._watching.notify_all()
        self._beating.notify_all()
        for signal in self.signals():
            if isinstance(signal, PollSignal):  # every one here is
                signal.epoch = None

    def let_go(self, runner_id: uuid.UUID, execution_id: uuid.UUID) -> None:
        """The runner let go of the execution (it ended, or was stopped or re-queued before the runner took it): if it
        was handed to the runner and not yet answered, it is no longer its; its next heartbeat reads its row."""
        gone = str(execution_id)
        self._beats.pop(runner_id, None)  # its status changes: its next heartbeat reads it, and one reading now
        self._beating.notify(runner_id)  # may have read it before
        self._drop_handed_note(runner_id, gone)
        for signal in self._handed_signals(runner_id):
            if signal.handed is not None and signal.handed.answer["id"] == gone:
                signal.handed = None

    def _note_handed(self, runner_id: uuid.UUID, handed: Handed) -> None:
        now = time.monotonic()
        self._handed.put(runner_id, (handed, now), now)

    def take_handed(self, runner_id: uuid.UUID, epoch: int) -> dict[str, Any] | None:
        """The poll's answer, if an execution was handed over to the runner while none of its polls waited here
        (see the module's docstring), under token `epoch`, within `QUIET_GAP_SECONDS`; None: the poll reads. The
        note is used up either way."""
        note = self._handed.pop(runner_id, None)
        if note is None or not self.alone:
            return None
        handed, at = note
        return answer_for(handed, epoch) if time.monotonic() - at <= QUIET_GAP_SECONDS else None

    def vouch(self, signal: PollSignal, epoch: int, digest: str | None) -> None:
        """The runner's row, read by this poll or by the full poll its quiet renewals go back to, showed the runner
        idle and enabled under token `epoch`, with this catalogue digest: only while this process is alone."""
        if self.alone:
            signal.epoch, signal.digest = epoch, _shared(digest)

    def leave_quiet(self, runner_id: uuid.UUID, poll: PollSignal, read_at: float) -> None:
        """A long poll ended by its timeout, nothing having woken it; `read_at`: when the runner's row was last
        read (`time.monotonic()`), by this poll or by the full poll its quiet renewals go back to. Only a poll still
        vouched for leaves a note (`end_quiet` and another hub process take the vouch away)."""
        if poll.epoch is None or not self.alone:
            return
        self._note(runner_id, poll.epoch, read_at, poll.digest)

    def watch(self, runner_id: uuid.UUID) -> Watch:
        """Before the runner's end report frees it: watch for anything that would make its next poll a full one
        (see `leave_idle`), and for the execution its offer assigns to the runner (`hand_over`). `unwatch` once the
        report has committed and its effects have run."""
        signal = HandedSignal()
        self._watching.add(runner_id, signal)
        return Watch(signal, time.monotonic())

    def unwatch(self, runner_id: uuid.UUID, watch: Watch) -> None:
        self._watching.unregister(runner_id, watch.signal)

    def hand_over(self, runner_id: uuid.UUID, watch: Watch, epoch: int) -> dict[str, Any] | None:
        """The execution assigned to the runner while its end report was watched, as its poll would answer it, for
        the report's answer (under token `epoch`; None: none, or taken back by a later wake-up or by `let_go`).
        The note kept for the runner's next poll is used up: the runner takes it from the answer."""
        answer = answer_for(watch.signal.handed, epoch)
        if answer is not None:
            self._drop_handed_note(runner_id, answer["id"])
        return answer

    def _drop_handed_note(self, runner_id: uuid.UUID, execution_id: str) -> None:
        """Drop the note of what was handed to the runner if it is that execution (its id as the poll answers it)."""
        note = self._handed.get(runner_id)
        if note is not None and note[0].answer["id"] == execution_id:
            del self._handed[runner_id]

    def leave_idle(self, runner_id: uuid.UUID, watch: Watch, epoch: int, digest: str | None) -> None:
        """The runner's end report, fenced by token `epoch`, left it idle and enabled with this catalogue digest,
        and its effects have run (work offered to it, none taken): its next poll may renew quietly, as after a
        poll that timed out, unless anything woke the runner (work assigned by anyone, a change to its row) or
        dropped every note (`end_quiet`) since the watch began: either sets its signal. Its heartbeats are answered
        from the report's read too: ONLINE, with this digest."""
        if watch.signal.is_set() or not self.alone:
            return
        digest = _shared(digest)
        self._note(runner_id, epoch, watch.began, digest)
        self._note_beat(runner_id, epoch, watch.began, RunnerStatus.ONLINE, digest)

    def _note(self, runner_id: uuid.UUID, epoch: int, read_at: float, digest: str | None) -> None:
        now = time.monotonic()
        self._quiet.put(runner_id, (epoch, read_at, now, digest), now)

    def take_quiet(self, runner_id: uuid.UUID, epoch: int) -> tuple[float, str | None] | None:
        """For a poll that will wait: when the runner's row was last read and the catalogue digest it held, if the
        poll may renew quietly (see the module's docstring); None: it reads the row. The note is used up either
        way."""
        note = self._quiet.pop(runner_id, None)
        if note is None or not self.alone:
            return None
        noted_epoch, read_at, ended_at, digest = note
        now = time.monotonic()
        if noted_epoch != epoch or now - ended_at > QUIET_GAP_SECONDS or now - read_at > FULL_POLL_SECONDS:
            return None
        return read_at, digest

    def watch_beat(self, runner_id: uuid.UUID) -> Watch:
        """Before a heartbeat reads the runner's row: watch for anything that would make the note it leaves wrong
        (every wake-up of the runner, the runner letting go of work, `end_quiet`). `unwatch_beat` after its read."""
        signal = HandedSignal()
        self._beating.add(runner_id, signal)
        return Watch(signal, time.monotonic())

    def unwatch_beat(self, runner_id: uuid.UUID, watch: Watch) -> None:
        self._beating.unregister(runner_id, watch.signal)

    def leave_beat(self, runner_id: uuid.UUID, watch: Watch, epoch: int, status: str, digest: str | None) -> None:
        """A full heartbeat, under token `epoch`, read the runner's row: this status and catalogue digest, no stop
        requested. The runner's next heartbeats may be answered from this note (`beat`) unless anything woke the
        runner, it let go of work, or every note was dropped since the watch began, before the read (`watch_beat`:
        its signal is set then)."""
        if watch.signal.is_set() or not self.alone:
            return
        self._note_beat(runner_id, epoch, watch.began, status, digest)

    def _note_beat(self, runner_id: uuid.UUID, epoch: int, read_at: float, status: str, digest: str | None) -> None:
        self._beats.put(runner_id, (epoch, read_at, sys.intern(str(status)), _shared(digest)), time.monotonic())

    def beat(self, runner_id: uuid.UUID, epoch: int) -> tuple[str, str | None] | None:
        """The runner's status and catalogue digest for its heartbeat, with no stop to carry out, if its last full
        heartbeat's note still holds (see the module's docstring): same token epoch, its read younger than
        `FULL_POLL_SECONDS`, nothing having woken the runner since; None: the heartbeat reads the row."""
        note = self._beats.get(runner_id)
        if note is None or not self.alone:
            return None
        noted_epoch, read_at, status, digest = note
        if noted_epoch != epoch or time.monotonic() - read_at > FULL_POLL_SECONDS:
            del self._beats[runner_id]
            return None
        return status, digest

    def payload(self, runner_id: uuid.UUID | str, handed: Handed | None = None) -> str:
        """What announces an assignment to `runner_id` (or `HELLO`) to the other processes: with the execution
        handed over (`origin:runner:epoch:answer`), as the claim read it, unless its answer is larger than
        `HANDED_MAX_BYTES`: the process where the runner's poll waits then answers it without reading it."""
        announced = f"{self.origin}:{runner_id}"
        if handed is None:
            return announced
        answer = orjson.dumps(handed.answer)
        return announced if len(answer) > HANDED_MAX_BYTES else f"{announced}:{handed.epoch}:{answer.decode()}"

    async def notify_by_postgres(self, runner_id: uuid.UUID | str) -> None:
        """Announce an assignment that has committed (or `HELLO`) to the other hub processes through PostgreSQL."""
        async with self.db.statement() as session:
            await session.execute(_NOTIFY, {"channel": CHANNEL, "payload": self.payload(runner_id)})

    def deliver(self, payload: str) -> None:
        """An announcement heard (from PostgreSQL or Redis): wake the runner's polls unless this process sent it;
        another process starting (`HELLO`) ends this one's notes until its next count."""
        origin, _, announced = payload.partition(":")
        if origin == self.origin:
            return
        if announced == HELLO:
            self.hearers = max(self._hearers, 2)
            return
        runner, _, handed = announced.partition(":")
        with contextlib.suppress(ValueError):
            key = uuid.UUID(runner)
            self.notify(key, self._handed_in(key, handed))

    def _handed_in(self, runner_id: uuid.UUID, announced: str) -> Handed | None:
        """The execution an announcement hands over (`epoch:answer`), read only when a poll or an end report of the
        runner waits here for it; None: nothing, or unreadable (the poll then reads what the runner holds)."""
        if not announced or not (self.is_waiting(runner_id) or self._watching.is_waiting(runner_id)):
            return None
        epoch, _, answer = announced.partition(":")
        try:
            return Handed(int(epoch), orjson.loads(answer))
        except ValueError:  # orjson's decode error is one
            return None

    async def count_hearers(self) -> None:
        """Until cancelled: announce this process to the others (`HELLO`, once), and count the hub processes
        listening on PostgreSQL (at once, then every `HEARERS_SECONDS`)."""
        greeted = False
        while True:
            try:
                if not greeted:
                    await self.notify_by_postgres(HELLO)
                    greeted = True
                await self.count()
            except TRANSIENT_ERRORS as exc:
                log.debug("counting the hub processes that hear wake-ups: %s", exc)
            await asyncio.sleep(HEARERS_SECONDS)

    async def count(self) -> int:
        """Count the hub processes listening on PostgreSQL now; with more than this one, no note is kept."""
        async with self.db.reading() as session:
            counted = (await session.execute(_LISTENERS, {"name": APPLICATION_NAME})).scalar_one()
        self.hearers = int(counted)
        return self.hearers

    async def hear_redis(self, url: str, command_seconds: float) -> None:
        """Until cancelled: deliver the announcements published in Redis, on a connection of its own (the queue's
        pool is reset when Redis mode resumes); resubscribes after a failure. `command_seconds`: how long a
        command, the subscription's confirmation included, may take (`EXEKRA_REDIS_TIMEOUT_SECONDS`)."""
        redis = redis_client(url, timeout=command_seconds, max_connections=1, pool_wait=command_seconds)
        delay = 0.1
        failing = False
        try:
            while True:
                try:
                    async with redis.pubsub() as pubsub:
                        await pubsub.subscribe(CHANNEL)
                        async with asyncio.timeout(command_seconds):
                            await self._confirmed(pubsub)
                        if failing:
                            log.info("wake-ups through Redis: subscribed again")
                        failing, delay = False, 0.1
                        self.notify_all()  # announcements may have been sent while unsubscribed
                        await self._hear(pubsub)
                except (RedisError, OSError, TimeoutError) as exc:
                    if not failing:
                        log.warning("wake-ups through Redis: %s: %s; resubscribing", type(exc).__name__, exc)
                    failing = True
                except Exception:  # a bug must not end the subscription: logged in full, and retried
                    log.exception("wake-ups through Redis failed; resubscribing")
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
        finally:
            await redis.aclose()

    @staticmethod
    async def _confirmed(pubsub: aioredis.client.PubSub) -> None:
        """Until Redis confirms the subscription (a refusal, such as NOPERM, raises)."""
        while True:
            message = await pubsub.get_message(timeout=KEEPALIVE_SECONDS)
            if message is not None and message["type"] == "subscribe":
                return

    async def _hear(self, pubsub: aioredis.client.PubSub) -> None:
        unanswered = False  # a PING was sent and nothing came back since
        while True:
            message = await pubsub.get_message(timeout=KEEPALIVE_SECONDS)  # None: nothing came in that time
            if message is None:
                if unanswered:
                    raise TimeoutError(f"Redis did not answer a PING within {KEEPALIVE_SECONDS:g} s")
                await pubsub.ping()  # answered by a message: a dead connection shows
                unanswered = True
                continue
            unanswered = False
            if message["type"] == "message":
                self.deliver(message["data"])
