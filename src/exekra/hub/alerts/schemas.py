"""Alert request bodies and API shapes: channels (never with their secrets), rules, deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from exekra.hub.alerts.models import (
    AlertChannel,
    AlertDelivery,
    AlertEventType,
    AlertRule,
    ChannelType,
    DeliveryKind,
    DeliveryStatus,
)
from exekra.hub.schemas import ApiAnswer, ApiModel, PageInfo

Name = Annotated[str, Field(min_length=1, max_length=200)]
MAX_COOLDOWN_SECONDS = 7 * 24 * 3600
MAX_OFFLINE_MINUTES = 7 * 24 * 60


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def _email_address(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at or not local or not domain or any(c.isspace() for c in value) or "," in value:
        raise ValueError(f"{value!r} is not an email address")
    return value


HttpUrl = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_http_url)]
EmailAddress = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_email_address)]
Recipients = Annotated[list[EmailAddress], Field(min_length=1, max_length=50)]


class NewChannel(ApiModel):
    """WEBHOOK and SLACK need `url` (Slack's incoming-webhook URL is kept sealed); EMAIL needs `to`."""

    name: Name
    type: ChannelType
    enabled: bool = True
    url: HttpUrl | None = None
    to: Recipients | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> NewChannel:
        if self.type == ChannelType.EMAIL and (self.to is None or self.url is not None):
            raise ValueError("an EMAIL channel takes `to` (a list of addresses) and no url")
        if self.type != ChannelType.EMAIL and (self.url is None or self.to is not None):
            raise ValueError(f"a {self.type} channel takes `url` and no `to`")
        return self


class ChannelPatch(ApiModel):
    """What to change; `url` and `to` only for the channel types that have them."""

    name: Name | None = None
    enabled: bool | None = None
    url: HttpUrl | None = None
    to: Recipients | None = None

    @model_validator(mode="after")
    def _not_null(self) -> ChannelPatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class ChannelOut(ApiAnswer):
    """A channel. `url` is a webhook's URL, or only the scheme and host of a Slack URL (the rest is secret)."""

    id: str
    name: str
    type: ChannelType
    enabled: bool
    url: str | None
    to: list[str] | None
    created_at: datetime
    updated_at: datetime


class ChannelAnswer(ApiAnswer):
    channel: ChannelOut


class ChannelWithSecret(ApiAnswer):
    """Create and rotate-secret of a WEBHOOK channel: its signing secret is shown only in this answer."""

    channel: ChannelOut
    secret: str | None = None


class ChannelPage(PageInfo):
    channels: list[ChannelOut]


class ChannelTestAnswer(ApiAnswer):
    """The delivery queued by a test send; follow it with `GET /api/alerts/deliveries/{id}`."""

    delivery: DeliveryOut


def _events(value: list[AlertEventType]) -> list[AlertEventType]:
    if len(set(value)) != len(value):
        raise ValueError("events must not repeat")
    return value


Events = Annotated[list[AlertEventType], Field(min_length=1, max_length=4), AfterValidator(_events)]
Cooldown = Annotated[int, Field(ge=0, le=MAX_COOLDOWN_SECONDS)]
OfflineMinutes = Annotated[int, Field(ge=1, le=MAX_OFFLINE_MINUTES)]
GLOBAL_ONLY = "RUNNER_OFFLINE is not about one workflow: a rule with it has no workflowId"


class NewRule(ApiModel):
    """Which events (FAILED, TIMEOUT, STOPPED of one workflow or of all; RUNNER_OFFLINE for longer than
    `offlineMinutes`) alert which channel, with at most one message per `cooldownSeconds` plus one digest."""

    name: Name
    channel_id: str = Field(min_length=1, max_length=64)
    events: Events
    workflow_id: str | None = Field(default=None, min_length=1, max_length=64)
    offline_minutes: OfflineMinutes = 5
    cooldown_seconds: Cooldown = 300
    enabled: bool = True

    @model_validator(mode="after")
    def _global_offline(self) -> NewRule:
        if AlertEventType.RUNNER_OFFLINE in self.events and self.workflow_id is not None:
            raise ValueError(GLOBAL_ONLY)
        return self


class RulePatch(ApiModel):
    """What to change (the workflow of a rule stays: make another rule)."""

    name: Name | None = None
    channel_id: str | None = Field(default=None, min_length=1, max_length=64)
    events: Events | None = None
    offline_minutes: OfflineMinutes | None = None
    cooldown_seconds: Cooldown | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _not_null(self) -> RulePatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class RuleOut(ApiAnswer):
    id: str
    name: str
    enabled: bool
    workflow_id: str | None
    channel_id: str
    events: list[AlertEventType]
    offline_minutes: int
    cooldown_seconds: int
    window_ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


class RuleAnswer(ApiAnswer):
    rule: RuleOut


class RulePage(PageInfo):
    rules: list[RuleOut]


class Attempt(ApiAnswer):
    at: datetime
    ok: bool
    http_status: int | None
    error: str | None


class DeliveryOut(ApiAnswer):
    """One message to one channel and its attempts; `payload` is what was (or will be) sent."""

    id: str
    rule_id: str | None
    channel_id: str | None
    kind: DeliveryKind
    status: DeliveryStatus
    event_count: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_http_status: int | None
    sent_at: datetime | None
    created_at: datetime
    history: list[Attempt]
    payload: dict[str, Any] | None


class DeliveryAnswer(ApiAnswer):
    delivery: DeliveryOut


class DeliveryPage(PageInfo):
    deliveries: list[DeliveryOut]


ChannelTestAnswer.model_rebuild()


def slack_display(url: str) -> str:
    """What may be shown of a Slack URL: its scheme and host (the path is the secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…"


def channel_to_api(channel: AlertChannel) -> dict[str, Any]:
    """A channel as the API shows it (never with a secret)."""
    config = channel.config
    return {
        "id": str(channel.id),
        "name": channel.name,
        "type": channel.type,
        "enabled": channel.enabled,
        "url": config.get("url"),
        "to": config.get("to"),
        "createdAt": channel.created_at,
        "updatedAt": channel.updated_at,
    }


def rule_to_api(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        "name": rule.name,
        "enabled": rule.enabled,
        "workflowId": None if rule.workflow_id is None else str(rule.workflow_id),
        "channelId": str(rule.channel_id),
        "events": rule.events,
        "offlineMinutes": rule.offline_minutes,
        "cooldownSeconds": rule.cooldown_seconds,
        "windowEndsAt": rule.window_ends_at,
        "createdAt": rule.created_at,
        "updatedAt": rule.updated_at,
    }


def delivery_to_api(delivery: AlertDelivery) -> dict[str, Any]:
    done = delivery.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED)
    return {
        "id": str(delivery.id),
        "ruleId": None if delivery.rule_id is None else str(delivery.rule_id),
        "channelId": None if delivery.channel_id is None else str(delivery.channel_id),
        "kind": delivery.kind,
        "status": delivery.status,
        "eventCount": delivery.event_count,
        "attempts": delivery.attempts,
        "nextAttemptAt": None if done else delivery.next_attempt_at,
        "lastError": delivery.last_error,
        "lastHttpStatus": delivery.last_http_status,
        "sentAt": delivery.sent_at,
        "createdAt": delivery.created_at,
        "history": delivery.history,
        "payload": delivery.payload,
    }
