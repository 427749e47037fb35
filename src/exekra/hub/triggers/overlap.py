"""A schedule's overlap policy: what a fire does while a run the trigger started earlier is still live.

- `allow`: start a run regardless (the default).
- `skip`: while a run is live (QUEUED, ASSIGNED or RUNNING), start nothing and record the skip.
- `queue_one`: while a run is live, keep the fire waiting and start it when no run is live any more (runs of
  the trigger never overlap); while one fire already waits, skip further fires and record them.

The caller holds the trigger's row lock (`firing`), and every run of a schedule is created under it, so two
hub processes can never both see "no live run" for the same trigger.
"""

from __future__ import annotations

from enum import Enum

from sqlalchemy import ColumnElement, Exists, exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.hub.executions.models import LIVE_STATUS_SQL, Execution, TriggerType
from exekra.hub.triggers.models import OverlapPolicy, Trigger

SKIPPED_WHILE_LIVE = "previous run still running (overlap policy skip)"
SKIPPED_WHILE_WAITING = "previous run still running and another fire already waiting (overlap policy queue_one)"


class Decision(Enum):
    START = "start"
    WAIT = "wait"
    SKIP = "skip"


def live_run_of(trigger_id: ColumnElement[str] | str) -> Exists:
    """EXISTS a live run started by the schedule `trigger_id` (a value, or a column to correlate with)."""
    return exists().where(
        Execution.triggered_by == trigger_id,
        Execution.trigger_type == TriggerType.SCHEDULE,
        text(f"executions.{LIVE_STATUS_SQL}"),
    )


async def live_run_exists(session: AsyncSession, trigger: Trigger, *, except_key: str) -> bool:
    """Whether a run this schedule started is live, other than the one of the fire keyed `except_key`.

    The fire's own run is left out: it exists when a process died after creating it but before recording
    the fire, and the fire handled again must find it back rather than skip.
    """
    live = live_run_of(str(trigger.id)).where(Execution.idempotency_key.is_distinct_from(except_key))
    return bool((await session.execute(select(live))).scalar_one())


async def decide(session: AsyncSession, trigger: Trigger, *, fire_key: str) -> tuple[Decision, str | None]:
    """What a due fire does under the trigger's policy, with the reason when it is skipped."""
    policy = OverlapPolicy(trigger.overlap_policy)
    if policy == OverlapPolicy.ALLOW:
        return Decision.START, None
    if policy == OverlapPolicy.QUEUE_ONE and trigger.waiting_fire_at is not None:
        return Decision.SKIP, SKIPPED_WHILE_WAITING
    if not await live_run_exists(session, trigger, except_key=fire_key):
        return Decision.START, None
    if policy == OverlapPolicy.SKIP:
        return Decision.SKIP, SKIPPED_WHILE_LIVE
    return Decision.WAIT, None
