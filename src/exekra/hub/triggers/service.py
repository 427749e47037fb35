"""Trigger management: create, list, edit, delete, rotate a webhook's token; schedule bookkeeping."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.locks import db_now
from exekra.db.session import Database
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.auth.security import new_secret, token_hash
from exekra.hub.errors import Conflict, ValidationFailed
from exekra.hub.lookup import IdPrefix, get_or_404, parse_id
from exekra.hub.triggers.cron import InvalidSchedule, Schedule
from exekra.hub.triggers.models import OverlapPolicy, Trigger, TriggerFire, TriggerKind
from exekra.hub.triggers.schemas import SCHEDULE_ONLY, NewTrigger, TriggerPatch
from exekra.hub.workflows.models import Workflow

WEBHOOK_TOKEN_PREFIX = "exw_"
DEFAULT_TIMEZONE = "UTC"
WAITING_FIRE_DROPPED = "waiting fire dropped: trigger disabled or overlap policy changed"


def schedule_of(trigger: Trigger) -> Schedule:
    """The trigger's validated schedule; raises `InvalidSchedule`."""
    assert trigger.cron_expression is not None
    return Schedule.parse(trigger.cron_expression, trigger.timezone or DEFAULT_TIMEZONE)


def _checked_schedule(expression: str, timezone: str) -> Schedule:
    try:
        return Schedule.parse(expression, timezone)
    except InvalidSchedule as exc:
        raise ValidationFailed(f"{exc.field}: {exc}") from None


async def _restart_schedule(session: AsyncSession, trigger: Trigger) -> None:
    """Set the next fire time from now (SCHEDULE and enabled), else clear it."""
    if trigger.type == TriggerKind.SCHEDULE and trigger.enabled:
        trigger.next_fire_at = schedule_of(trigger).next_after(await db_now(session))
    else:
        trigger.next_fire_at = None


async def _drop_waiting_fire_unless_queued(session: AsyncSession, trigger: Trigger) -> None:
    """A fire waiting under queue_one is dropped (and recorded so) once the trigger is disabled or its policy
    is no longer queue_one: it never starts later by surprise."""
    if trigger.waiting_fire_at is None or (trigger.enabled and trigger.overlap_policy == OverlapPolicy.QUEUE_ONE):
        return
    await session.execute(
        update(TriggerFire)
        .where(TriggerFire.trigger_id == trigger.id, TriggerFire.fire_time == trigger.waiting_fire_at)
        .values(skip_reason=WAITING_FIRE_DROPPED)
    )
    trigger.waiting_fire_at = None


async def create_trigger(db: Database, data: NewTrigger, actor: Actor) -> tuple[Trigger, str | None]:
    """Create a trigger; a webhook's token is returned here (and by rotate) only, and stored hashed."""
    token = None
    trigger = Trigger(
        type=data.type,
        name=data.name,
        enabled=data.enabled,
        inputs=data.inputs,
        created_by=actor.user_id,
    )
    if data.type == TriggerKind.SCHEDULE:
        assert data.cron_expression is not None
        schedule = _checked_schedule(data.cron_expression, data.timezone or DEFAULT_TIMEZONE)
        trigger.cron_expression, trigger.timezone = schedule.expression, schedule.timezone
        trigger.overlap_policy = data.overlap_policy or OverlapPolicy.ALLOW
    else:
        token = new_secret(WEBHOOK_TOKEN_PREFIX)
        trigger.token_hash = token_hash(token)
    async with db.transaction() as session:
        workflow = await get_or_404(session, Workflow, data.workflow_id, "workflow")
        trigger.workflow_id = workflow.id
        await _restart_schedule(session, trigger)
        session.add(trigger)
        await session.flush()
        await session.refresh(trigger)
        details = {"name": trigger.name, "type": trigger.type, "workflowId": str(workflow.id)}
        audit.record(session, actor, "trigger.create", "trigger", trigger.id, details)
    return trigger, token


async def list_triggers(
    db: Database,
    *,
    workflow_id: str | None,
    kind: TriggerKind | None,
    offset: int,
    limit: int,
    id_prefix: IdPrefix | None = None,
) -> tuple[list[Trigger], int]:
    """A page of triggers by name, optionally of one workflow or one type, with the total count."""
    query = select(Trigger)
    if id_prefix is not None:
        query = query.where(id_prefix.matches(Trigger.id))
    if workflow_id:
        query = query.where(Trigger.workflow_id == parse_id(workflow_id, "workflow"))
    if kind:
        query = query.where(Trigger.type == kind)
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await session.execute(query.order_by(Trigger.name, Trigger.id).offset(offset).limit(limit))
        return list(rows.scalars()), int(total)


async def get_trigger(db: Database, trigger_id: str) -> Trigger:
    async with db.session() as session:
        return await get_or_404(session, Trigger, trigger_id, "trigger")


async def update_trigger(db: Database, trigger_id: str, patch: TriggerPatch, actor: Actor) -> Trigger:
    """Apply the fields the patch names; a new expression, timezone or `enabled` restarts the schedule."""
    changes: dict[str, Any] = patch.model_dump(include=patch.model_fields_set, by_alias=True)
    async with db.transaction() as session:
        trigger = await get_or_404(session, Trigger, trigger_id, "trigger", for_update=True)
        if not changes:
            return trigger
        if (
            trigger.type == TriggerKind.WEBHOOK
            and {"cron_expression", "timezone", "overlap_policy"} & patch.model_fields_set
        ):
            raise ValidationFailed(SCHEDULE_ONLY)
        for name in ("name", "enabled", "inputs", "overlap_policy"):
            if name in patch.model_fields_set:
                setattr(trigger, name, getattr(patch, name))
        if trigger.type == TriggerKind.SCHEDULE:
            schedule = _checked_schedule(
                patch.cron_expression or trigger.cron_expression or "",
                patch.timezone or trigger.timezone or DEFAULT_TIMEZONE,
            )
            trigger.cron_expression, trigger.timezone = schedule.expression, schedule.timezone
            if {"cron_expression", "timezone", "enabled"} & patch.model_fields_set:
                await _restart_schedule(session, trigger)
            await _drop_waiting_fire_unless_queued(session, trigger)
        trigger.updated_at = func.now()
        await session.flush()
        await session.refresh(trigger)
        audit.record(session, actor, "trigger.update", "trigger", trigger.id, changes)
    return trigger


async def delete_trigger(db: Database, trigger_id: str, actor: Actor) -> None:
    async with db.transaction() as session:
        trigger = await get_or_404(session, Trigger, trigger_id, "trigger", for_update=True)
        await session.delete(trigger)
        audit.record(session, actor, "trigger.delete", "trigger", trigger.id, {"name": trigger.name})


async def rotate_token(db: Database, trigger_id: str, actor: Actor) -> tuple[Trigger, str]:
    """A new webhook token; the old one stops working at once."""
    token = new_secret(WEBHOOK_TOKEN_PREFIX)
    async with db.transaction() as session:
        trigger = await get_or_404(session, Trigger, trigger_id, "trigger", for_update=True)
        if trigger.type != TriggerKind.WEBHOOK:
            raise Conflict(f"trigger {trigger.name} is a {trigger.type} trigger and has no token")
        trigger.token_hash = token_hash(token)
        trigger.updated_at = func.now()
        await session.flush()
        await session.refresh(trigger)
        audit.record(session, actor, "trigger.rotate_token", "trigger", trigger.id)
    return trigger, token
