"""What follows a state change, applied in one place once the transaction that made it commits.

A lifecycle rule declares its consequences as data (`Effects`). The statement that applies the rule records
a `Transition` on its transaction (`record`); services record audit entries on their transaction the same
way (`audit.record`). The hub's `Database` hands every transaction to the `EffectApplier` at commit:

- just before the commit, inside the transaction: the audit rows (one INSERT). An execution's end is announced
  by the ending statement itself (`lifecycle`), which saves a round trip on the runner's `complete`;
- after the commit: an assigned execution wakes its runner's long poll, in this process or announced to the
  others (`dispatch.wakeups`), and leaves Redis; a queued execution is offered to the dispatcher (a re-queued
  one before the runner and the slot it let go of), one that left the queue leaves Redis, a freed idle runner
  is offered work, then the executions waiting for a freed concurrency slot are offered, and the end hooks
  run.

A transaction that rolls back applies nothing: what it recorded goes with it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exekra.db.raw import Statements
from exekra.db.session import AfterCommit
from exekra.hub import tasks
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.concurrency import Group
from exekra.hub.dispatch.handed import Handed
from exekra.hub.dispatch.profile import RunnerProfile
from exekra.hub.errors import TRANSIENT_ERRORS

if TYPE_CHECKING:
    from exekra.hub.dispatch.dispatcher import Dispatcher
    from exekra.hub.dispatch.wakeups import Wakeups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Effects:
    """The consequences a lifecycle rule declares."""

    queued: bool = False  # the execution (re-)entered QUEUED: offer it to the dispatcher
    unqueued: bool = False  # it left QUEUED without being assigned: take it out of the queue
    assigned: bool = False  # it was handed to a runner: wake that runner's long poll
    frees_runner: bool = False  # its runner let go of it: offer the runner work when it is idle
    frees_slot: bool = False  # it let go of a concurrency slot (or a limit grew): offer the group's waiting work
    ends: bool = False  # it reached a terminal state: announce the end, run the end hooks
    wakes_runner: bool = False  # a runner's row changed in a way its polls must see: wake them
    audit: str | None = None  # the audit action recorded, if the rule is audited


NO_EFFECTS = Effects()


@dataclass(frozen=True)
class Transition:
    """One rule applied to one execution (or runner) in a transaction."""

    rule: str
    effects: Effects
    execution_id: uuid.UUID | None = None
    runner_id: uuid.UUID | None = None  # the runner assigned, or the runner freed
    runner_idle: bool = False  # the freed runner is alive and holds nothing: it may be offered work
    # What the freed runner may take, as the rule's statement read it (its end report's does): offered by it.
    runner_profile: RunnerProfile | None = None
    attempt: int | None = None
    handed: Handed | None = None  # the execution assigned, as the runner's poll answers it
    status: str | None = None  # the execution's status after the rule
    slot: Group | None = None  # the concurrency group a slot of which was freed
    has_children: bool = False  # the execution started sub-workflows: its end stops those still live


EndHook = Callable[[Transition], Awaitable[None]]
"""Called after the commit for every execution that ended (later features: notifications, parents)."""

_TRANSITIONS = "exekra.transitions"


def record(
    session: Statements,
    transition: Transition,
    *,
    actor: Actor = audit.SYSTEM,
    entity_type: str = "execution",
    details: dict[str, Any] | None = None,
    audit_written: bool = False,
) -> None:
    """Record a transition on the session's transaction, with its audit entry when the rule has one, unless the
    statement that applied the rule wrote that entry itself (`audit_written`)."""
    recorded: list[Transition] = session.info.setdefault(_TRANSITIONS, [])
    recorded.append(transition)
    if transition.effects.audit is not None and not audit_written:
        entity_id = transition.execution_id if entity_type == "execution" else transition.runner_id
        audit.record(session, actor, transition.effects.audit, entity_type, entity_id, details)


def recorded_transitions(session: Statements) -> list[Transition]:
    """What the session's transaction has recorded so far (tests and inspection)."""
    return list(session.info.get(_TRANSITIONS, ()))


class EffectApplier:
    """Applies recorded effects at commit (`exekra.db.session.CommitHooks`); one per hub process.

    Without a dispatcher (a command such as `exekra purge`) only the audit rows are written: the hub's own
    safety nets dispatch what such a command changed.
    """

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None
        self._end_hooks: list[EndHook] = []

    def bind(self, dispatcher: Dispatcher) -> None:
        """The dispatcher that in-process effects go to (built after the database it uses)."""
        self.dispatcher = dispatcher

    def on_end(self, hook: EndHook) -> Callable[[], None]:
        """Run `hook` after the commit of every transition that ends an execution; returns its removal."""
        self._end_hooks.append(hook)
        return lambda: self._end_hooks.remove(hook)

    async def before_commit(self, session: Statements) -> AfterCommit | None:
        await audit.write_recorded(session)
        transitions: list[Transition] = session.info.pop(_TRANSITIONS, [])
        if not transitions or self.dispatcher is None:
            return None

        async def after_commit() -> None:
            try:
                for transition in transitions:
                    await self._apply(transition)
            except BaseException:  # not a transient error (`_apply` handles those): a bug, or the caller cancelled
                # The transitions after this one had no effect: a wake-up among them may be lost, so no note stays.
                self._wakeups().end_quiet()
                raise

        return after_commit

    async def _apply(self, t: Transition) -> None:
        dispatcher = self.dispatcher
        assert dispatcher is not None
        effects = t.effects
        try:
            if effects.frees_runner and t.runner_id is not None and t.execution_id is not None:
                # If it was handed to the runner and not yet answered, it is no longer its.
                dispatcher.wakeups.let_go(t.runner_id, t.execution_id)
            if effects.assigned and t.execution_id is not None and t.runner_id is not None:
                await dispatcher.execution_assigned(t.execution_id, t.runner_id, t.handed)
            if effects.wakes_runner and t.runner_id is not None:
                dispatcher.wakeups.notify(t.runner_id)
                if not dispatcher.wakeups.alone:
                    # Another process may keep notes of the runner while this one is not counted (its LISTEN
                    # connection down, or it has just started): announced to every process, as an assignment is.
                    await dispatcher.wakeups.notify_by_postgres(t.runner_id)
            if effects.unqueued and t.execution_id is not None:
                await dispatcher.execution_unqueued(t.execution_id, t.status or t.rule)
            if effects.queued and t.execution_id is not None:
                if effects.frees_runner or effects.frees_slot:
                    # A re-queue: its own claim before those of the runner and the slot it let go of. Beside them,
                    # each claim would skip the execution the other holds (SKIP LOCKED), and a younger execution
                    # waiting for the slot would take it and the runner, the re-queued one losing its place.
                    await dispatcher.execution_queued(t.execution_id, claim_now=True)
                else:
                    # Matching runs beside the caller, whose answer never waits for a runner (SPEC §4, create).
                    tasks.spawn(self._beside(t, dispatcher.execution_queued(t.execution_id)))
            if effects.frees_runner and t.runner_idle and t.runner_id is not None:
                await dispatcher.runner_idle(t.runner_id, t.runner_profile)
            if effects.frees_slot and t.slot is not None:
                # Beside the caller, like a queued execution: a runner's `complete` does not wait for it. After the
                # freed runner's claim, not beside it: the two claims at once would each skip the execution the
                # other holds, and the runner would take the next in line while the best one lost its slot.
                tasks.spawn(self._beside(t, dispatcher.slot_freed(t.slot)))
            if effects.ends:
                for hook in self._end_hooks:
                    await hook(t)
        except TRANSIENT_ERRORS as exc:
            self._failed(t, exc)

    async def _beside(self, t: Transition, effect: Awaitable[None]) -> None:
        """An effect run beside the caller (`tasks.spawn`), failing as the others do."""
        try:
            await effect
        except TRANSIENT_ERRORS as exc:
            self._failed(t, exc)

    def _wakeups(self) -> Wakeups:
        assert self.dispatcher is not None
        return self.dispatcher.wakeups

    def _failed(self, t: Transition, exc: BaseException) -> None:
        # The change itself is committed; the dispatcher's safety nets (the sweeper, the queue's reconciliation,
        # the stale rules, every runner's next poll) finish what the failed effect left.
        self._wakeups().end_quiet()
        log.warning("effects of %s on %s: %s: %s", t.rule, t.execution_id, type(exc).__name__, exc)
