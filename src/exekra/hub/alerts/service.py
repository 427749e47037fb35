"""Alert channels and rules: create, list, edit, delete (audited); the delivery history.

A webhook channel's signing secret is made here, shown once, and sealed with the hub's secret key the way
credentials' fields are (`exekra.hub.credentials.crypto`), bound to the channel's id; so is a Slack URL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.session import Database
from exekra.hub.alerts import outbox
from exekra.hub.alerts.models import (
    AlertChannel,
    AlertDelivery,
    AlertEventType,
    AlertRule,
    ChannelType,
    DeliveryKind,
    DeliveryStatus,
)
from exekra.hub.alerts.schemas import GLOBAL_ONLY, ChannelPatch, NewChannel, NewRule, RulePatch, slack_display
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.auth.security import new_secret
from exekra.hub.credentials.crypto import credentials_key, decrypt_fields, encrypt_fields
from exekra.hub.errors import Conflict, ValidationFailed
from exekra.hub.lookup import get_or_404, parse_id
from exekra.hub.workflows.models import Workflow

WEBHOOK_SECRET_PREFIX = "exs_"


def channel_context(channel_id: uuid.UUID) -> bytes:
    """The associated data that binds a channel's sealed secrets to its id."""
    return b"alert-channel:" + str(channel_id).encode()


def seal_secrets(secret_key: bytes, channel_id: uuid.UUID, secrets: dict[str, str]) -> bytes:
    return encrypt_fields(credentials_key(secret_key), secrets, channel_context(channel_id))


def channel_secrets(secret_key: bytes, channel: AlertChannel) -> dict[str, str]:
    """The channel's sealed secrets (`secret` of a webhook, `url` of Slack); DecryptionFailed otherwise."""
    if channel.sealed_secrets is None:
        return {}
    return decrypt_fields(credentials_key(secret_key), channel.sealed_secrets, channel_context(channel.id))


async def _flush_named(session: AsyncSession, what: str, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"an alert {what} named {name!r} already exists") from None


def _set_address(secret_key: bytes, channel: AlertChannel, url: str | None, to: list[str] | None) -> None:
    """Put a channel's address where it belongs: a webhook URL and recipients in `config`, a Slack URL sealed."""
    if channel.type == ChannelType.EMAIL:
        if url is not None:
            raise ValidationFailed("an EMAIL channel has no url")
        if to is not None:
            channel.config = {"to": to}
        return
    if to is not None:
        raise ValidationFailed(f"a {channel.type} channel has no `to`")
    if url is None:
        return
    if channel.type == ChannelType.WEBHOOK:
        channel.config = {"url": url}
    else:
        channel.config = {"url": slack_display(url)}
        channel.sealed_secrets = seal_secrets(secret_key, channel.id, {"url": url})


async def create_channel(
    db: Database, secret_key: bytes, data: NewChannel, actor: Actor
) -> tuple[AlertChannel, str | None]:
    """Create a channel; a WEBHOOK's signing secret is returned here (and by rotate) only."""
    channel = AlertChannel(id=uuid.uuid4(), name=data.name, type=data.type, enabled=data.enabled, config={})
    _set_address(secret_key, channel, data.url, data.to)
    secret = None
    if data.type == ChannelType.WEBHOOK:
        secret = new_secret(WEBHOOK_SECRET_PREFIX)
        channel.sealed_secrets = seal_secrets(secret_key, channel.id, {"secret": secret})
    async with db.transaction() as session:
        session.add(channel)
        await _flush_named(session, "channel", data.name)
        await session.refresh(channel)
        details = {"name": channel.name, "type": channel.type, **_redacted_config(channel)}
        audit.record(session, actor, "alert.channel.create", "alert_channel", channel.id, details)
    return channel, secret


def _redacted_config(channel: AlertChannel) -> dict[str, Any]:
    """What an audit entry may say of a channel's address (a Slack URL's secret path never)."""
    return dict(channel.config)


async def list_channels(db: Database, *, offset: int, limit: int) -> tuple[list[AlertChannel], int]:
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(AlertChannel))).scalar_one()
        rows = await session.execute(select(AlertChannel).order_by(AlertChannel.name).offset(offset).limit(limit))
        return list(rows.scalars()), int(total)


async def get_channel(db: Database, channel_id: str) -> AlertChannel:
    async with db.session() as session:
        return await get_or_404(session, AlertChannel, channel_id, "alert channel")


async def update_channel(
    db: Database, secret_key: bytes, channel_id: str, patch: ChannelPatch, actor: Actor
) -> AlertChannel:
    """Rename, enable or disable, or change the address (a Slack URL is sealed again)."""
    async with db.transaction() as session:
        channel = await get_or_404(session, AlertChannel, channel_id, "alert channel", for_update=True)
        _set_address(secret_key, channel, patch.url, patch.to)
        if patch.name is not None:
            channel.name = patch.name
        if patch.enabled is not None:
            channel.enabled = patch.enabled
        channel.updated_at = func.now()
        await _flush_named(session, "channel", channel.name)
        await session.refresh(channel)
        details = {"name": channel.name, "changed": sorted(patch.model_fields_set), **_redacted_config(channel)}
        audit.record(session, actor, "alert.channel.update", "alert_channel", channel.id, details)
    return channel


async def rotate_channel_secret(
    db: Database, secret_key: bytes, channel_id: str, actor: Actor
) -> tuple[AlertChannel, str]:
    """A new signing secret for a WEBHOOK channel; messages are signed with it from now on."""
    secret = new_secret(WEBHOOK_SECRET_PREFIX)
    async with db.transaction() as session:
        channel = await get_or_404(session, AlertChannel, channel_id, "alert channel", for_update=True)
        if channel.type != ChannelType.WEBHOOK:
            raise Conflict(f"alert channel {channel.name} is a {channel.type} channel and has no signing secret")
        channel.sealed_secrets = seal_secrets(secret_key, channel.id, {"secret": secret})
        channel.updated_at = func.now()
        await session.flush()
        await session.refresh(channel)
        audit.record(session, actor, "alert.channel.rotate_secret", "alert_channel", channel.id, {"name": channel.name})
    return channel, secret


async def delete_channel(db: Database, channel_id: str, actor: Actor) -> None:
    """Delete a channel; Conflict while a rule sends to it."""
    async with db.transaction() as session:
        channel = await get_or_404(session, AlertChannel, channel_id, "alert channel", for_update=True)
        rules = (await session.execute(select(AlertRule.name).where(AlertRule.channel_id == channel.id))).scalars()
        names = sorted(rules)
        if names:
            raise Conflict(
                f"alert channel {channel.name} is used by the rules {', '.join(names)}: delete or change them first",
                details={"rules": names},
            )
        dropped = await _drop_unsent(session, AlertDelivery.channel_id == channel.id, claimed_too=True)
        await session.delete(channel)
        details = {"name": channel.name, "unsentDropped": dropped}
        audit.record(session, actor, "alert.channel.delete", "alert_channel", channel.id, details)


async def queue_test_message(db: Database, channel_id: str, actor: Actor, now: datetime) -> AlertDelivery:
    """A test message to the channel, delivered like any alert (so its result shows in the deliveries)."""
    async with db.transaction() as session:
        channel = await get_or_404(session, AlertChannel, channel_id, "alert channel")
        payload: dict[str, Any] = {
            "kind": "TEST",
            "text": f"Test message from Exekra to alert channel {channel.name}",
            "rule": None,
            "count": 0,
            "firstAt": None,
            "lastAt": None,
            "events": [],
            "eventsOmitted": 0,
        }
        delivery = outbox.new_delivery(channel.id, None, DeliveryKind.ALERT, now, now)
        delivery.payload = {"id": str(delivery.id), **payload}
        session.add(delivery)
        await session.flush()
        details = {"name": channel.name, "deliveryId": str(delivery.id)}
        audit.record(session, actor, "alert.channel.test", "alert_channel", channel.id, details)
    return delivery


async def _checked_refs(session: AsyncSession, channel_id: str | None, workflow_id: str | None) -> None:
    """NotFound for a channel or workflow that does not exist (a dangling reference is the caller's mistake)."""
    if channel_id is not None:
        await get_or_404(session, AlertChannel, channel_id, "alert channel")
    if workflow_id is not None:
        await get_or_404(session, Workflow, workflow_id, "workflow")


async def create_rule(db: Database, data: NewRule, actor: Actor) -> AlertRule:
    async with db.transaction() as session:
        await _checked_refs(session, data.channel_id, data.workflow_id)
        rule = AlertRule(
            name=data.name,
            enabled=data.enabled,
            workflow_id=None if data.workflow_id is None else parse_id(data.workflow_id, "workflow"),
            channel_id=parse_id(data.channel_id, "alert channel"),
            events=[str(e) for e in data.events],
            offline_minutes=data.offline_minutes,
            cooldown_seconds=data.cooldown_seconds,
            created_by=actor.user_id,
        )
        session.add(rule)
        await _flush_named(session, "rule", data.name)
        await session.refresh(rule)
        audit.record(session, actor, "alert.rule.create", "alert_rule", rule.id, rule_details(rule))
    return rule


def rule_details(rule: AlertRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "events": rule.events,
        "workflowId": None if rule.workflow_id is None else str(rule.workflow_id),
        "channelId": str(rule.channel_id),
        "cooldownSeconds": rule.cooldown_seconds,
        "enabled": rule.enabled,
    }


async def list_rules(db: Database, *, workflow_id: str | None, offset: int, limit: int) -> tuple[list[AlertRule], int]:
    """Rules by name; with `workflowId`, that workflow's rules and the global ones (all that apply to it)."""
    query = select(AlertRule)
    if workflow_id:
        wid = parse_id(workflow_id, "workflow")
        query = query.where((AlertRule.workflow_id == wid) | AlertRule.workflow_id.is_(None))
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await session.execute(query.order_by(AlertRule.name, AlertRule.id).offset(offset).limit(limit))
        return list(rows.scalars()), int(total)


async def get_rule(db: Database, rule_id: str) -> AlertRule:
    async with db.session() as session:
        return await get_or_404(session, AlertRule, rule_id, "alert rule")


async def update_rule(db: Database, rule_id: str, patch: RulePatch, actor: Actor) -> AlertRule:
    async with db.transaction() as session:
        rule = await get_or_404(session, AlertRule, rule_id, "alert rule", for_update=True)
        await _checked_refs(session, patch.channel_id, None)
        events = patch.events if patch.events is not None else [AlertEventType(e) for e in rule.events]
        if AlertEventType.RUNNER_OFFLINE in events and rule.workflow_id is not None:
            raise ValidationFailed(GLOBAL_ONLY)
        if patch.name is not None:
            rule.name = patch.name
        if patch.channel_id is not None:
            rule.channel_id = parse_id(patch.channel_id, "alert channel")
        rule.events = [str(e) for e in events]
        for name in ("offline_minutes", "cooldown_seconds", "enabled"):
            if name in patch.model_fields_set:
                setattr(rule, name, getattr(patch, name))
        rule.updated_at = func.now()
        await _flush_named(session, "rule", rule.name)
        await session.refresh(rule)
        details = {**rule_details(rule), "changed": sorted(patch.model_fields_set)}
        audit.record(session, actor, "alert.rule.update", "alert_rule", rule.id, details)
    return rule


async def delete_rule(db: Database, rule_id: str, actor: Actor) -> None:
    """Delete a rule with its events; the deliveries it sent (or is sending) stay in the history, without their
    rule; those not yet claimed have nothing left to say and go with it."""
    async with db.transaction() as session:
        rule = await get_or_404(session, AlertRule, rule_id, "alert rule", for_update=True)
        dropped = await _drop_unsent(session, AlertDelivery.rule_id == rule.id, claimed_too=False)
        await session.delete(rule)
        details = {"name": rule.name, "unsentDropped": dropped}
        audit.record(session, actor, "alert.rule.delete", "alert_rule", rule.id, details)


async def _drop_unsent(session: AsyncSession, which: ColumnElement[bool], *, claimed_too: bool) -> int:
    """Delete the PENDING deliveries matching `which` (only those never claimed unless `claimed_too`)."""
    query = delete(AlertDelivery).where(which, AlertDelivery.status == DeliveryStatus.PENDING)
    if not claimed_too:
        query = query.where(AlertDelivery.payload.is_(None))
    result = await session.execute(query)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def list_deliveries(
    db: Database,
    *,
    status: DeliveryStatus | None,
    rule_id: str | None,
    channel_id: str | None,
    offset: int,
    limit: int,
) -> tuple[list[AlertDelivery], int]:
    """Deliveries newest first, optionally by status (FAILED: the ones that gave up), rule or channel."""
    query = select(AlertDelivery)
    if status is not None:
        query = query.where(AlertDelivery.status == status)
    if rule_id:
        query = query.where(AlertDelivery.rule_id == parse_id(rule_id, "alert rule"))
    if channel_id:
        query = query.where(AlertDelivery.channel_id == parse_id(channel_id, "alert channel"))
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        ordered = query.order_by(AlertDelivery.created_at.desc(), AlertDelivery.id.desc())
        rows = await session.execute(ordered.offset(offset).limit(limit))
        return list(rows.scalars()), int(total)


async def get_delivery(db: Database, delivery_id: str) -> AlertDelivery:
    async with db.session() as session:
        return await get_or_404(session, AlertDelivery, delivery_id, "alert delivery")


async def retry_delivery(db: Database, delivery_id: str, actor: Actor, now: datetime) -> AlertDelivery:
    """A FAILED delivery becomes due again with a fresh set of attempts; Conflict for any other."""
    async with db.transaction() as session:
        delivery = await get_or_404(session, AlertDelivery, delivery_id, "alert delivery", for_update=True)
        if delivery.status != DeliveryStatus.FAILED:
            raise Conflict(f"alert delivery {delivery.id} is {delivery.status}: only a FAILED one is retried")
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = now
        await session.flush()
        audit.record(session, actor, "alert.delivery.retry", "alert_delivery", delivery.id)
    return delivery
