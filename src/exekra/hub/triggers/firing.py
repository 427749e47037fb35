"""Starting executions from triggers: schedule fires and webhook calls, and recording their failures.

A schedule fire is handled exactly once, whatever the number of hub processes and restarts:

1. The firing process locks the trigger row (`FOR UPDATE SKIP LOCKED`, and only while its `next_fire_at`
   is still the fire time it read), so one process at a time handles one trigger.
2. It claims the fire in `trigger_fires`, unique on (trigger, fire time): a fire time once recorded is
   never handled again, even if the schedule's next fire time were computed back onto it.
3. The execution is created with the idempotency key `schedule:<trigger id>:<fire time>`, which never
   expires: if the process dies after the execution was committed but before the claim was, the next
   attempt (another process, or this one after a restart) gets that execution back instead of a second.

Before a run starts, the trigger's overlap policy decides (`overlap`), under the same row lock: start it,
keep it waiting (`waiting_fire_at`, queue_one) or skip it (recorded on the fire and the trigger). A waiting
fire is started by `start_waiting_fire` once no run of the trigger is live, with the key of its own fire time.

After downtime, the stored `next_fire_at` is in the past: it fires once (the catch-up run), and the next
fire time is computed from now, so the fires missed in between are skipped.

A fire holds two pooled connections for a moment (the locked trigger row's, and the execution's own
transaction), so the hub's pool needs at least two (`connection_limit` ≥ 2).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.locks import db_now
from exekra.db.session import Database
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.auth.security import token_hash
from exekra.hub.errors import ExekraError, Forbidden, NotFound
from exekra.hub.executions.creation import Created, ExecutionRequest
from exekra.hub.executions.models import Execution, TriggerType
from exekra.hub.executions.service import ExecutionService
from exekra.hub.triggers import overlap
from exekra.hub.triggers.cron import InvalidSchedule
from exekra.hub.triggers.models import OverlapPolicy, Trigger, TriggerFire, TriggerKind
from exekra.hub.triggers.service import schedule_of

log = logging.getLogger(__name__)

# A schedule fire's key must outlive any dedup window: a fire time is never legitimately reused.
SCHEDULE_KEY_WINDOW_SECONDS = 100 * 365 * 86400
MAX_TOKEN_CHARS = 200


def trigger_actor(trigger_id: uuid.UUID, ip: str | None = None) -> Actor:
    return Actor("TRIGGER", str(trigger_id), ip)


def schedule_key(trigger_id: uuid.UUID, fire_time: datetime) -> str:
    return f"schedule:{trigger_id}:{fire_time.isoformat()}"


@dataclass(frozen=True)
class Due:
    trigger_id: uuid.UUID
    fire_time: datetime


async def due_schedules(db: Database, limit: int = 100) -> list[Due]:
    """Enabled schedules whose next fire time has come (by the database clock), earliest first."""
    async with db.session() as session:
        rows = await session.execute(
            select(Trigger.id, Trigger.next_fire_at)
            .where(Trigger.enabled, Trigger.next_fire_at.is_not(None), Trigger.next_fire_at <= func.now())
            .order_by(Trigger.next_fire_at)
            .limit(limit)
        )
        return [Due(row.id, row.next_fire_at) for row in rows if row.next_fire_at is not None]


async def seconds_until_next_fire(db: Database) -> float | None:
    """Seconds until the earliest scheduled fire (0 when one is due), None when nothing is scheduled."""
    async with db.session() as session:
        earliest = (
            await session.execute(
                select(func.extract("epoch", func.min(Trigger.next_fire_at) - func.now())).where(
                    Trigger.enabled, Trigger.next_fire_at.is_not(None)
                )
            )
        ).scalar_one()
    return None if earliest is None else max(0.0, float(earliest))


async def fire_schedule(executions: ExecutionService, due: Due, *, keep_fires_days: int) -> Execution | None:
    """Handle one due fire (see the module docstring); returns the execution it started, if any.

    Does nothing when another process holds the trigger or has already moved it past this fire time.
    """
    async with executions.db.transaction() as session:
        trigger = (
            await session.execute(
                select(Trigger)
                .where(Trigger.id == due.trigger_id, Trigger.next_fire_at == due.fire_time, Trigger.enabled)
                .with_for_update(skip_locked=True)
            )
        ).scalar_one_or_none()
        if trigger is None:
            return None
        now = await db_now(session)
        claimed = await session.execute(
            insert(TriggerFire)
            .values(trigger_id=trigger.id, fire_time=due.fire_time)
            .on_conflict_do_nothing()
            .returning(TriggerFire.trigger_id)
        )
        execution = None
        if claimed.first() is not None:
            if now - due.fire_time > timedelta(minutes=1):
                log.info("trigger %s: catch-up run for the fire due at %s", trigger.id, due.fire_time.isoformat())
            key = schedule_key(trigger.id, due.fire_time)
            decision, reason = await overlap.decide(session, trigger, fire_key=key)
            if decision == overlap.Decision.START:
                execution = await _start_scheduled(executions, session, trigger, due.fire_time)
            elif decision == overlap.Decision.WAIT:
                trigger.waiting_fire_at = due.fire_time
            else:
                assert reason is not None
                await _record_skip(session, trigger, due.fire_time, reason)
        try:
            trigger.next_fire_at = schedule_of(trigger).next_after(max(due.fire_time, now))
        except InvalidSchedule as exc:  # stored before a library or timezone-data change made it invalid
            trigger.next_fire_at = None
            await record_failure(session, trigger, f"schedule stopped: {exc}", {"fireTime": due.fire_time})
        await session.execute(
            delete(TriggerFire).where(
                TriggerFire.trigger_id == trigger.id,
                TriggerFire.fire_time < now - timedelta(days=keep_fires_days),
            )
        )
    return execution


async def waiting_fires_ready(db: Database, limit: int = 100) -> list[Due]:
    """Fires waiting under queue_one whose trigger has no live run any more, oldest first."""
    live = overlap.live_run_of(cast(Trigger.id, String))
    async with db.session() as session:
        rows = await session.execute(
            select(Trigger.id, Trigger.waiting_fire_at)
            .where(Trigger.enabled, Trigger.waiting_fire_at.is_not(None), ~live)
            .order_by(Trigger.waiting_fire_at)
            .limit(limit)
        )
        return [Due(row.id, row.waiting_fire_at) for row in rows if row.waiting_fire_at is not None]


async def start_waiting_fire(executions: ExecutionService, due: Due) -> Execution | None:
    """Start a fire that waited under queue_one, if it still waits and no run of its trigger is live."""
    async with executions.db.transaction() as session:
        trigger = (
            await session.execute(
                select(Trigger)
                .where(
                    Trigger.id == due.trigger_id,
                    Trigger.waiting_fire_at == due.fire_time,
                    Trigger.enabled,
                    Trigger.overlap_policy == OverlapPolicy.QUEUE_ONE,
                )
                .with_for_update(skip_locked=True)
            )
        ).scalar_one_or_none()
        if trigger is None:
            return None
        if await overlap.live_run_exists(session, trigger, except_key=schedule_key(trigger.id, due.fire_time)):
            return None
        trigger.waiting_fire_at = None
        return await _start_scheduled(executions, session, trigger, due.fire_time)


async def _record_skip(session: AsyncSession, trigger: Trigger, fire_time: datetime, reason: str) -> None:
    """A fire its overlap policy skipped: kept on the fire and on the trigger (`lastSkippedAt`, `lastSkipReason`)."""
    await session.execute(
        update(TriggerFire)
        .where(TriggerFire.trigger_id == trigger.id, TriggerFire.fire_time == fire_time)
        .values(skip_reason=reason)
    )
    trigger.last_skipped_at = fire_time
    trigger.last_skip_reason = reason


async def _start_scheduled(
    executions: ExecutionService, session: AsyncSession, trigger: Trigger, fire_time: datetime
) -> Execution | None:
    """Create the fire's execution (its own transaction) and record the outcome in the caller's."""
    request = ExecutionRequest(
        workflow_id=trigger.workflow_id,
        inputs=dict(trigger.inputs),
        trigger_type=TriggerType.SCHEDULE,
        triggered_by=str(trigger.id),
        idempotency_key=schedule_key(trigger.id, fire_time),
        key_window_seconds=SCHEDULE_KEY_WINDOW_SECONDS,
    )
    fire = update(TriggerFire).where(TriggerFire.trigger_id == trigger.id, TriggerFire.fire_time == fire_time)
    try:
        created = await executions.create(request, trigger_actor(trigger.id))
    except ExekraError as exc:
        await session.execute(fire.values(error=exc.message))
        await record_failure(session, trigger, exc.message, {"fireTime": fire_time})
        return None
    await session.execute(fire.values(execution_id=created.execution.id))
    trigger.last_fired_at = fire_time
    trigger.last_error = trigger.last_error_at = None
    return created.execution


async def record_failure(session: AsyncSession, trigger: Trigger, error: str, details: dict[str, Any]) -> None:
    """Keep the failure on the trigger (`lastError`) and in the audit log."""
    trigger.last_error = error
    trigger.last_error_at = func.now()
    audit.record(
        session, trigger_actor(trigger.id), "trigger.fire_failed", "trigger", trigger.id, {"error": error, **details}
    )


async def rebuild_schedules(db: Database) -> int:
    """At hub start: give every enabled schedule a next fire time computed now.

    A next fire time in the past is kept, so that the catch-up run happens; a missing or future one is
    recomputed (a timezone-data update may have moved it). Returns the number of schedules looked at.
    """
    async with db.transaction() as session:
        now = await db_now(session)
        triggers = (
            await session.execute(
                select(Trigger)
                .where(Trigger.type == TriggerKind.SCHEDULE, Trigger.enabled)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        count = 0
        for trigger in triggers:
            count += 1
            if trigger.next_fire_at is not None and trigger.next_fire_at <= now:
                continue
            try:
                trigger.next_fire_at = schedule_of(trigger).next_after(now)
            except InvalidSchedule as exc:
                trigger.next_fire_at = None
                await record_failure(session, trigger, f"schedule stopped: {exc}", {})
    return count


async def webhook_trigger(db: Database, token: str) -> Trigger:
    """The webhook trigger a token belongs to: NotFound for an unknown token, Forbidden when disabled."""
    if len(token) > MAX_TOKEN_CHARS:
        raise NotFound("Unknown webhook")
    async with db.session() as session:
        trigger = (
            await session.execute(
                select(Trigger).where(Trigger.token_hash == token_hash(token), Trigger.type == TriggerKind.WEBHOOK)
            )
        ).scalar_one_or_none()
    if trigger is None:
        raise NotFound("Unknown webhook")
    if not trigger.enabled:
        raise Forbidden(f"Trigger {trigger.name} is disabled")
    return trigger


async def start_from_webhook(
    executions: ExecutionService, trigger: Trigger, payload: Any, *, idempotency_key: str | None, ip: str | None
) -> Created:
    """Start the trigger's workflow with the call's JSON body as the `payload` input.

    A failure (no published version, inputs that do not validate, …) is recorded on the trigger and in
    the audit log, then raised to the caller.
    """
    inputs = dict(trigger.inputs)
    if payload is not None:
        inputs["payload"] = payload
    request = ExecutionRequest(
        workflow_id=trigger.workflow_id,
        inputs=inputs,
        trigger_type=TriggerType.WEBHOOK,
        triggered_by=str(trigger.id),
        idempotency_key=f"webhook:{idempotency_key}" if idempotency_key else None,
    )
    try:
        created = await executions.create(request, trigger_actor(trigger.id, ip))
    except ExekraError as exc:
        async with executions.db.transaction() as session:
            locked = await session.get(Trigger, trigger.id, with_for_update=True)
            if locked is not None:
                await record_failure(session, locked, exc.message, {"source": "webhook"})
        raise
    if not created.duplicate:
        async with executions.db.transaction() as session:
            await session.execute(
                update(Trigger)
                .where(Trigger.id == trigger.id)
                .values(last_fired_at=func.now(), last_error=None, last_error_at=None)
            )
    return created
