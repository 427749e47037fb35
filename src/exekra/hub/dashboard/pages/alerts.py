"""Alerts: channels (ADMIN), rules (ADMIN, DEVELOPER) and the recent deliveries, failed ones first to see."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from exekra.hub.alerts import service
from exekra.hub.alerts.models import AlertEventType, ChannelType, DeliveryStatus
from exekra.hub.alerts.schemas import NewChannel, NewRule, RulePatch
from exekra.hub.dashboard.web import PageRoute, attempt, form_problem, redirect, render
from exekra.hub.deps import AdminUser, CurrentUser, DeveloperUser, get_hub
from exekra.hub.errors import ExekraError, NotFound, ValidationFailed
from exekra.hub.lookup import parse_id
from exekra.hub.workflows import service as workflows

router = APIRouter(route_class=PageRoute)

LISTED = 200
DELIVERIES_SHOWN = 50
WORKFLOW_CHOICES = 500
BACK = "/alerts"


async def _context(request: Request, failed_only: bool) -> dict[str, Any]:
    db = get_hub(request).db
    channels, _ = await service.list_channels(db, offset=0, limit=LISTED)
    rules, _ = await service.list_rules(db, workflow_id=None, offset=0, limit=LISTED)
    status = DeliveryStatus.FAILED if failed_only else None
    recent, total = await service.list_deliveries(
        db, status=status, rule_id=None, channel_id=None, offset=0, limit=DELIVERIES_SHOWN
    )
    failed = (
        await service.list_deliveries(
            db, status=DeliveryStatus.FAILED, rule_id=None, channel_id=None, offset=0, limit=1
        )
    )[1]
    choices, _ = await workflows.list_workflows(db, offset=0, limit=WORKFLOW_CHOICES, search=None, archived=False)
    return {
        "channels": channels,
        "channel_names": {c.id: c.name for c in channels},
        "rules": rules,
        "rule_names": {r.id: r.name for r in rules},
        "deliveries": recent,
        "deliveries_total": total,
        "failed_total": failed,
        "failed_only": failed_only,
        "workflows": [c.workflow for c in choices],
        "workflow_names": {c.workflow.id: c.workflow.name for c in choices},
        "channel_types": [t.value for t in ChannelType],
        "event_types": [t.value for t in AlertEventType],
        "channel_form": {},
        "rule_form": {},
        "channel_error": None,
        "rule_error": None,
    }


@router.get("/alerts")
async def alerts_page(request: Request, user: CurrentUser, failed: bool = False) -> Response:
    return render(request, "alerts.html", await _context(request, failed), section="alerts")


async def _refused(request: Request, exc: Exception, **form: Any) -> Response:
    if isinstance(exc, ExekraError) and not isinstance(exc, ValidationFailed | NotFound):
        raise exc
    context = await _context(request, False)
    context.update(form)
    message = form_problem(exc) if isinstance(exc, ValidationError) else getattr(exc, "message", str(exc))
    key = "channel_error" if "channel_form" in form else "rule_error"
    context[key] = message
    return render(request, "alerts.html", context, status=422, section="alerts")


@router.post("/alerts/channels")
async def create_channel(
    request: Request,
    user: AdminUser,
    name: Annotated[str, Form(max_length=200)] = "",
    type: Annotated[str, Form(max_length=16)] = "WEBHOOK",
    address: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    hub = get_hub(request)
    form = {"name": name, "type": type, "address": address}
    try:
        if type == ChannelType.EMAIL:
            to = [a.strip() for a in address.replace("\n", ",").split(",") if a.strip()]
            data = NewChannel(name=name.strip(), type=type, to=to)
        else:
            data = NewChannel(name=name.strip(), type=type, url=address.strip())
        channel, secret = await service.create_channel(hub.db, hub.secret_key, data, user.actor)
    except (ValidationError, ExekraError) as exc:
        return await _refused(request, exc, channel_form=form)
    if secret is None:
        return redirect(request, BACK, f"Alert channel {channel.name} created.")
    return _secret_page(request, channel.name, secret, new=True)


def _secret_page(request: Request, name: str, secret: str, *, new: bool) -> Response:
    """The one page that shows a webhook channel's signing secret; never cached, never shown again."""
    context = {"name": name, "secret": secret, "new": new}
    return render(
        request,
        "alert_secret.html",
        context,
        status=201 if new else 200,
        section="alerts",
        headers={"Cache-Control": "no-store"},
    )


def _channel_id(channel_id: str) -> str:
    return str(parse_id(channel_id, "alert channel"))


@router.post("/alerts/channels/{channel_id}/test")
async def test_channel(request: Request, channel_id: str, user: AdminUser) -> Response:
    hub = get_hub(request)
    queued = service.queue_test_message(hub.db, _channel_id(channel_id), user.actor, hub.alerts.clock())
    response = await attempt(request, BACK, queued, "Test message queued: see its delivery below.")
    hub.alerts.wake()
    return response


@router.post("/alerts/channels/{channel_id}/rotate-secret")
async def rotate_secret(request: Request, channel_id: str, user: AdminUser) -> Response:
    hub = get_hub(request)
    channel, secret = await service.rotate_channel_secret(hub.db, hub.secret_key, _channel_id(channel_id), user.actor)
    return _secret_page(request, channel.name, secret, new=False)


@router.post("/alerts/channels/{channel_id}/delete")
async def delete_channel(request: Request, channel_id: str, user: AdminUser) -> Response:
    deleted = service.delete_channel(get_hub(request).db, _channel_id(channel_id), user.actor)
    return await attempt(request, BACK, deleted, "Alert channel deleted.")


@router.post("/alerts/rules")
async def create_rule(
    request: Request,
    user: DeveloperUser,
    name: Annotated[str, Form(max_length=200)] = "",
    channel: Annotated[str, Form(max_length=64)] = "",
    workflow: Annotated[str, Form(max_length=64)] = "",
    events: Annotated[list[str] | None, Form(max_length=32)] = None,
    cooldown: Annotated[int, Form(ge=0)] = 300,
    offline_minutes: Annotated[int, Form(ge=1)] = 5,
) -> Response:
    form = {
        "name": name,
        "channel": channel,
        "workflow": workflow,
        "events": events or [],
        "cooldown": cooldown,
        "offline_minutes": offline_minutes,
    }
    try:
        data = NewRule.model_validate(
            {
                "name": name.strip(),
                "channelId": channel,
                "workflowId": workflow or None,
                "events": events or [],
                "cooldownSeconds": cooldown,
                "offlineMinutes": offline_minutes,
            }
        )
        rule = await service.create_rule(get_hub(request).db, data, user.actor)
    except (ValidationError, ExekraError) as exc:
        return await _refused(request, exc, rule_form=form)
    return redirect(request, BACK, f"Alert rule {rule.name} created.")


def _rule_id(rule_id: str) -> str:
    return str(parse_id(rule_id, "alert rule"))


@router.post("/alerts/rules/{rule_id}/enable")
async def enable_rule(request: Request, rule_id: str, user: DeveloperUser) -> Response:
    update = service.update_rule(get_hub(request).db, _rule_id(rule_id), RulePatch(enabled=True), user.actor)
    return await attempt(request, BACK, update, "Alert rule enabled.")


@router.post("/alerts/rules/{rule_id}/disable")
async def disable_rule(request: Request, rule_id: str, user: DeveloperUser) -> Response:
    update = service.update_rule(get_hub(request).db, _rule_id(rule_id), RulePatch(enabled=False), user.actor)
    return await attempt(request, BACK, update, "Alert rule disabled: its events are no longer collected.")


@router.post("/alerts/rules/{rule_id}/delete")
async def delete_rule(request: Request, rule_id: str, user: DeveloperUser) -> Response:
    deleted = service.delete_rule(get_hub(request).db, _rule_id(rule_id), user.actor)
    return await attempt(request, BACK, deleted, "Alert rule deleted.")


@router.post("/alerts/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: str, user: DeveloperUser) -> Response:
    hub = get_hub(request)
    ident = str(parse_id(delivery_id, "alert delivery"))
    retried = service.retry_delivery(hub.db, ident, user.actor, hub.alerts.clock())
    response = await attempt(request, f"{BACK}?failed=true", retried, "Delivery due again.")
    hub.alerts.wake()
    return response
