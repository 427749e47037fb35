"""Trigger request bodies and the trigger's API shape."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from exekra.hub.executions.models import ExecutionStatus
from exekra.hub.schemas import ApiAnswer, ApiModel, PageInfo
from exekra.hub.triggers.models import OverlapPolicy, Trigger, TriggerKind

Name = Annotated[str, Field(min_length=1, max_length=200)]
CronExpression = Annotated[str, Field(min_length=1, max_length=200)]
Timezone = Annotated[str, Field(min_length=1, max_length=64)]


SCHEDULE_ONLY = "cronExpression, timezone and overlapPolicy are only for SCHEDULE triggers"


class NewTrigger(ApiModel):
    """A schedule needs `cronExpression` (timezone defaults to UTC, overlapPolicy to allow); a webhook takes
    none of them."""

    workflow_id: str = Field(min_length=1, max_length=64)
    type: TriggerKind
    name: Name
    enabled: bool = True
    cron_expression: CronExpression | None = None
    timezone: Timezone | None = None
    overlap_policy: OverlapPolicy | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields_of_type(self) -> NewTrigger:
        if self.type == TriggerKind.SCHEDULE and self.cron_expression is None:
            raise ValueError("cronExpression is required for a SCHEDULE trigger")
        schedule_fields = (self.cron_expression, self.timezone, self.overlap_policy)
        if self.type == TriggerKind.WEBHOOK and any(value is not None for value in schedule_fields):
            raise ValueError(SCHEDULE_ONLY)
        return self


class TriggerPatch(ApiModel):
    """What to change; a changed expression, timezone or `enabled` restarts a schedule from now."""

    name: Name | None = None
    enabled: bool | None = None
    cron_expression: CronExpression | None = None
    timezone: Timezone | None = None
    overlap_policy: OverlapPolicy | None = None
    inputs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _not_null(self) -> TriggerPatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class TriggerOut(ApiAnswer):
    """A trigger (never with its webhook token)."""

    id: str
    workflow_id: str
    type: TriggerKind
    name: str
    enabled: bool
    cron_expression: str | None
    timezone: str | None
    overlap_policy: OverlapPolicy
    inputs: dict[str, Any]
    next_fire_at: datetime | None
    waiting_fire_at: datetime | None
    last_fired_at: datetime | None
    last_skipped_at: datetime | None
    last_skip_reason: str | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TriggerAnswer(ApiAnswer):
    trigger: TriggerOut


class TriggerWithToken(ApiAnswer):
    """Create and rotate-token: a webhook trigger's new token and URL are shown only in this answer."""

    trigger: TriggerOut
    token: str | None = None
    url: str | None = None


class TriggerPage(PageInfo):
    triggers: list[TriggerOut]


class WebhookAnswer(ApiAnswer):
    """202 for a started execution; 200 with the first one when the idempotency key was seen (`duplicate`)."""

    execution_id: str
    status: ExecutionStatus
    duplicate: bool


def trigger_to_api(trigger: Trigger) -> dict[str, Any]:
    """A trigger as the API shows it (never with its webhook token)."""
    return {
        "id": str(trigger.id),
        "workflowId": str(trigger.workflow_id),
        "type": trigger.type,
        "name": trigger.name,
        "enabled": trigger.enabled,
        "cronExpression": trigger.cron_expression,
        "timezone": trigger.timezone,
        "overlapPolicy": trigger.overlap_policy,
        "inputs": trigger.inputs,
        "nextFireAt": trigger.next_fire_at,
        "waitingFireAt": trigger.waiting_fire_at,
        "lastFiredAt": trigger.last_fired_at,
        "lastSkippedAt": trigger.last_skipped_at,
        "lastSkipReason": trigger.last_skip_reason,
        "lastError": trigger.last_error,
        "lastErrorAt": trigger.last_error_at,
        "createdAt": trigger.created_at,
        "updatedAt": trigger.updated_at,
    }
