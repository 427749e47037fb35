"""Triggers: every schedule and webhook (overall or of one workflow), create and edit them, rotate a token."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import available_timezones

import orjson
from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from exekra.hub.dashboard.web import PageRoute, attempt, form_problem, redirect, render
from exekra.hub.deps import CurrentUser, DeveloperUser, PageNumber, get_hub
from exekra.hub.errors import ExekraError, NotFound, ValidationFailed
from exekra.hub.lookup import parse_id
from exekra.hub.triggers import overview, service
from exekra.hub.triggers.cron import InvalidSchedule, Schedule, explain, upcoming
from exekra.hub.triggers.models import OverlapPolicy, Trigger, TriggerKind
from exekra.hub.triggers.schemas import NewTrigger, TriggerPatch
from exekra.hub.workflows import service as workflows

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50
WORKFLOW_CHOICES = 500
PREVIEW_FIRES = 5
OVERLAP_LABELS = {
    OverlapPolicy.ALLOW: "Start another run anyway (allow)",
    OverlapPolicy.SKIP: "Skip the fire and record it (skip)",
    OverlapPolicy.QUEUE_ONE: "Keep one fire waiting, start it when the run ends (queue_one)",
}
OVERLAP_CHOICES = [(policy.value, label) for policy, label in OVERLAP_LABELS.items()]


@lru_cache(maxsize=1)
def timezones() -> list[str]:
    """Every IANA time zone name, sorted, UTC first."""
    return ["UTC", *sorted(name for name in available_timezones() if name != "UTC")]


def cron_preview(expression: str, timezone: str) -> dict[str, Any]:
    """The expression in words and its next fire times, or why it cannot be used."""
    if not expression.strip():
        return {"error": None, "words": None, "fires": []}
    try:
        schedule = Schedule.parse(expression, timezone or "UTC")
        words = explain(schedule.expression)
    except InvalidSchedule as exc:
        return {"error": str(exc), "words": None, "fires": []}
    fires = upcoming(schedule, datetime.now(UTC), PREVIEW_FIRES)
    return {"error": None, "words": words, "fires": fires, "timezone": schedule.timezone}


def _inputs(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"inputs: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValidationFailed("inputs: must be a JSON object")
    return value


async def _list_context(request: Request, workflow: str | None, page: int) -> dict[str, Any]:
    hub = get_hub(request)
    page = max(1, page)
    workflow_id = str(parse_id(workflow, "workflow")) if workflow else None
    rows, total = await overview.trigger_rows(
        hub.db, workflow_id=workflow_id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    choices, _ = await workflows.list_workflows(hub.db, offset=0, limit=WORKFLOW_CHOICES, search=None, archived=False)
    shown = next((c.workflow for c in choices if str(c.workflow.id) == workflow_id), None)
    if workflow_id and shown is None:
        shown = (await workflows.get_workflow(hub.db, workflow_id)).workflow
    return {
        "rows": rows,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "workflow_filter": shown,
        "workflows": [c.workflow for c in choices],
        "timezones": timezones(),
        "overlap_policies": OVERLAP_CHOICES,
        "explain": _explain_or_none,
        "form": {"type": "SCHEDULE", "timezone": "UTC", "workflow": workflow_id or ""},
        "preview": cron_preview("", "UTC"),
        "error": None,
    }


def _explain_or_none(trigger: Trigger) -> str | None:
    if trigger.type != TriggerKind.SCHEDULE or not trigger.cron_expression:
        return None
    try:
        return explain(trigger.cron_expression)
    except InvalidSchedule:
        return None


@router.get("/triggers")
async def triggers_page(
    request: Request, user: CurrentUser, workflow: str | None = None, page: PageNumber = 1
) -> Response:
    return render(request, "triggers.html", await _list_context(request, workflow, page), section="triggers")


@router.get("/triggers/cron-preview")
async def preview(request: Request, user: CurrentUser, cron: str = "", timezone: str = "UTC") -> Response:
    """The cron expression in words and its next five fire times, refreshed as the person types."""
    return render(request, "_cron_preview.html", {"preview": cron_preview(cron[:200], timezone[:64])})


@router.post("/triggers")
async def create_trigger(
    request: Request,
    user: DeveloperUser,
    workflow: Annotated[str, Form(max_length=64)] = "",
    type: Annotated[str, Form(max_length=16)] = "SCHEDULE",
    name: Annotated[str, Form(max_length=200)] = "",
    cron: Annotated[str, Form(max_length=200)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    overlap: Annotated[str, Form(max_length=16)] = OverlapPolicy.ALLOW.value,
    inputs: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    hub = get_hub(request)
    form = {
        "workflow": workflow,
        "type": type,
        "name": name,
        "cron": cron,
        "timezone": timezone,
        "overlap": overlap,
        "inputs": inputs,
    }
    schedule = type == TriggerKind.SCHEDULE
    try:
        data = NewTrigger(
            workflow_id=workflow,
            type=type,
            name=name.strip(),
            cron_expression=cron if schedule else None,
            timezone=(timezone or "UTC") if schedule else None,
            overlap_policy=overlap if schedule else None,
            inputs=_inputs(inputs),
        )
        trigger, token = await service.create_trigger(hub.db, data, user.actor)
    except (ValidationError, ExekraError) as exc:
        if isinstance(exc, ExekraError) and not isinstance(exc, ValidationFailed | NotFound):
            raise
        context = await _list_context(request, None, 1)
        context.update(
            form=form,
            preview=cron_preview(cron, timezone),
            error=form_problem(exc) if isinstance(exc, ValidationError) else exc.message,
        )
        return render(request, "triggers.html", context, status=422, section="triggers")
    if token is None:
        return redirect(request, f"/triggers/{trigger.id}", f"Schedule {trigger.name} created.")
    return _webhook_url(request, trigger, token, new=True)


def _webhook_url(request: Request, trigger: Trigger, token: str, *, new: bool) -> Response:
    """The one page that shows a webhook's URL; never cached, never shown again."""
    base = (get_hub(request).settings.public_url or str(request.base_url)).rstrip("/")
    return render(
        request,
        "trigger_token.html",
        {"trigger": trigger, "url": f"{base}/api/webhooks/{token}", "new": new},
        status=201 if new else 200,
        section="triggers",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/triggers/{trigger_id}")
async def trigger_page(request: Request, trigger_id: str, user: CurrentUser) -> Response:
    row = await overview.trigger_row(get_hub(request).db, trigger_id)
    if row is None:
        raise NotFound(f"trigger {trigger_id} not found")
    trigger = row.trigger
    context = {
        "row": row,
        "trigger": trigger,
        "timezones": timezones(),
        "overlap_policies": OVERLAP_CHOICES,
        "overlap_label": OVERLAP_LABELS[OverlapPolicy(trigger.overlap_policy)],
        "words": _explain_or_none(trigger),
        "preview": cron_preview(trigger.cron_expression or "", trigger.timezone or "UTC")
        if trigger.type == TriggerKind.SCHEDULE
        else None,
        "inputs_text": orjson.dumps(trigger.inputs, option=orjson.OPT_INDENT_2).decode() if trigger.inputs else "",
    }
    return render(request, "trigger.html", context, section="triggers")


def _back(trigger_id: str) -> str:
    return f"/triggers/{parse_id(trigger_id, 'trigger')}"


@router.post("/triggers/{trigger_id}/edit")
async def edit_trigger(
    request: Request,
    trigger_id: str,
    user: DeveloperUser,
    name: Annotated[str, Form(max_length=200)] = "",
    cron: Annotated[str | None, Form(max_length=200)] = None,
    timezone: Annotated[str | None, Form(max_length=64)] = None,
    overlap: Annotated[str | None, Form(max_length=16)] = None,
    inputs: Annotated[str, Form(max_length=100_000)] = "",
) -> Response:
    async def save() -> None:
        fields: dict[str, Any] = {"name": name.strip(), "inputs": _inputs(inputs)}
        if cron is not None:
            fields["cron_expression"] = cron
            fields["timezone"] = timezone or "UTC"
        if overlap is not None:
            fields["overlap_policy"] = overlap
        await service.update_trigger(get_hub(request).db, trigger_id, TriggerPatch(**fields), user.actor)

    return await attempt(request, _back(trigger_id), save(), "Trigger saved.")


@router.post("/triggers/{trigger_id}/enable")
async def enable_trigger(request: Request, trigger_id: str, user: DeveloperUser) -> Response:
    patch = TriggerPatch(enabled=True)
    update = service.update_trigger(get_hub(request).db, trigger_id, patch, user.actor)
    return await attempt(request, _back(trigger_id), update, "Trigger enabled.")


@router.post("/triggers/{trigger_id}/disable")
async def disable_trigger(request: Request, trigger_id: str, user: DeveloperUser) -> Response:
    patch = TriggerPatch(enabled=False)
    update = service.update_trigger(get_hub(request).db, trigger_id, patch, user.actor)
    return await attempt(request, _back(trigger_id), update, "Trigger disabled: it starts nothing until enabled.")


@router.post("/triggers/{trigger_id}/rotate-token")
async def rotate_token(request: Request, trigger_id: str, user: DeveloperUser) -> Response:
    trigger, token = await service.rotate_token(get_hub(request).db, trigger_id, user.actor)
    return _webhook_url(request, trigger, token, new=False)


@router.post("/triggers/{trigger_id}/delete")
async def delete_trigger(request: Request, trigger_id: str, user: DeveloperUser) -> Response:
    back = _back(trigger_id)
    try:
        await service.delete_trigger(get_hub(request).db, trigger_id, user.actor)
    except ExekraError as exc:
        return redirect(request, back, exc.message, "error")
    return redirect(request, "/triggers", "Trigger deleted.")
