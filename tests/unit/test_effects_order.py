"""The order in which the effect applier hands a transition's consequences to the dispatcher."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest

from exekra.db.raw import Statements
from exekra.hub import effects, tasks
from exekra.hub.concurrency import Group
from exekra.hub.effects import EffectApplier, Effects, Transition


class RecordingDispatcher:
    """Notes when each claim it is asked for is done; the runner's claim takes a moment, as a statement does."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.wakeups = SimpleNamespace(let_go=lambda *_: self.done.append("handed execution taken back"))

    async def runner_idle(self, runner_id: uuid.UUID, profile: Any = None) -> None:
        await asyncio.sleep(0.02)
        self.done.append("freed runner claimed")

    async def slot_freed(self, group: Group) -> None:
        self.done.append("freed slot offered")

    async def execution_queued(self, execution_id: uuid.UUID, *, claim_now: bool = False) -> None:
        await asyncio.sleep(0.02)
        self.done.append("re-queued execution claimed" if claim_now else "queued execution offered")


async def applied(rule: str, declared: Effects) -> list[str]:
    """What the dispatcher did, in order, once a transaction that applied `rule` to an execution whose runner was
    idle after it and whose slot freed committed."""
    dispatcher = RecordingDispatcher()
    applier = EffectApplier()
    applier.bind(cast(Any, dispatcher))
    session = cast(Statements, SimpleNamespace(info={}))
    transition = Transition(
        rule,
        declared,
        execution_id=uuid.uuid4(),
        runner_id=uuid.uuid4(),
        runner_idle=True,
        slot=Group(uuid.uuid4(), ""),
    )
    effects.record(session, transition)
    after_commit = await applier.before_commit(session)
    assert after_commit is not None
    await after_commit()
    await tasks.drain(5)
    return dispatcher.done


async def test_a_runner_that_ends_its_execution_claims_before_the_slot_it_freed_is_offered() -> None:
    # Both at once, each claim would skip the execution the other holds (SKIP LOCKED): the runner would take the
    # next in line and the best one would find its slot gone, starting the group's executions out of order.
    ended = Effects(frees_runner=True, frees_slot=True)
    assert await applied("complete", ended) == [
        "handed execution taken back",
        "freed runner claimed",
        "freed slot offered",
    ]


async def test_a_requeued_execution_is_claimed_before_the_runner_and_the_slot_it_let_go_of() -> None:
    # Beside them, the freed runner's claim would skip the re-queued execution while its own claim holds it, and
    # take the younger execution waiting for the slot it freed: the re-queued one would lose its place.
    requeued = Effects(queued=True, frees_runner=True, frees_slot=True)
    assert await applied("requeue", requeued) == [
        "handed execution taken back",
        "re-queued execution claimed",
        "freed runner claimed",
        "freed slot offered",
    ]


class WakingDispatcher:
    """Records the wake-ups of runners, in this process and announced to the others; its claim fails as a bug does."""

    def __init__(self, *, alone: bool) -> None:
        self.done: list[str] = []

        async def announced(runner_id: uuid.UUID) -> None:
            self.done.append(f"announced {runner_id}")

        self.wakeups = SimpleNamespace(
            alone=alone,
            notify=lambda runner_id: self.done.append(f"woken {runner_id}"),
            notify_by_postgres=announced,
            end_quiet=lambda: self.done.append("every note dropped"),
            let_go=lambda *_: None,
        )

    async def runner_idle(self, runner_id: uuid.UUID, profile: Any = None) -> None:
        raise RuntimeError("a bug in the claim")


async def _committed(dispatcher: Any, *transitions: Transition) -> None:
    applier = EffectApplier()
    applier.bind(dispatcher)
    session = cast(Statements, SimpleNamespace(info={}))
    for transition in transitions:
        effects.record(session, transition)
    after_commit = await applier.before_commit(session)
    assert after_commit is not None
    await after_commit()


async def test_a_runner_woken_while_this_process_is_not_alone_is_announced_to_every_process() -> None:
    runner = uuid.uuid4()
    changed = Transition("runner-changed", Effects(wakes_runner=True), runner_id=runner)
    for alone, done in ((True, [f"woken {runner}"]), (False, [f"woken {runner}", f"announced {runner}"])):
        dispatcher = WakingDispatcher(alone=alone)
        await _committed(dispatcher, changed)
        assert dispatcher.done == done


async def test_effects_cut_short_by_an_error_drop_every_note() -> None:
    """A wake-up among the transitions after the one that failed is lost: no note may outlive it."""
    dispatcher = WakingDispatcher(alone=True)
    freed = Transition(
        "complete", Effects(frees_runner=True), execution_id=uuid.uuid4(), runner_id=uuid.uuid4(), runner_idle=True
    )
    stop = Transition("request-stop", Effects(wakes_runner=True), execution_id=uuid.uuid4(), runner_id=uuid.uuid4())
    with pytest.raises(RuntimeError, match="a bug in the claim"):
        await _committed(dispatcher, freed, stop)
    assert dispatcher.done == ["every note dropped"]
