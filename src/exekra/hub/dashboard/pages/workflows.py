"""Workflows: list and search, detail with versions and publishing, the run form, the definition editor."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from exekra.hub.context import Hub
from exekra.hub.dashboard.formatting import pretty_json
from exekra.hub.dashboard.inputs import input_fields, read_inputs, undeclared_fields
from exekra.hub.dashboard.web import PageRoute, attempt, form_problem, redirect, render
from exekra.hub.deps import CurrentUser, DeveloperUser, PageNumber, Principal, get_hub
from exekra.hub.errors import Conflict, ExekraError, NotFound, PayloadTooLarge, ValidationFailed
from exekra.hub.executions.creation import ExecutionRequest
from exekra.hub.executions.models import TriggerType
from exekra.hub.executions.names import names_of
from exekra.hub.executions.queries import ExecutionFilter
from exekra.hub.lookup import parse_id
from exekra.hub.runners import service as runners
from exekra.hub.workflows import service
from exekra.hub.workflows.models import WorkflowVersion
from exekra.hub.workflows.schemas import NewWorkflow, RetryPolicy, WorkflowPatch

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50
INTERACTIVE_PRIORITY = 9  # a person pressing Run goes first (SPEC §5)
RUNNER_CHOICES = 200
STARTER_DEFINITION: dict[str, Any] = {
    "inputs": {"name": {"type": "string", "default": "world"}},
    "nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "hello {{ inputs.name }}"}}],
    "edges": [],
}


@router.get("/workflows")
async def workflows_page(
    request: Request, user: CurrentUser, q: str = "", archived: bool = False, page: PageNumber = 1
) -> Response:
    page = max(1, page)
    summaries, total = await service.list_workflows(
        get_hub(request).db,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        search=q.strip()[:200] or None,
        archived=archived,
    )
    context = {
        "workflows": summaries,
        "total": total,
        "q": q,
        "archived": archived,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
    }
    return render(request, "workflows.html", context, section="workflows")


@router.get("/workflows/new")
async def new_workflow_page(request: Request, user: DeveloperUser) -> Response:
    form = {"name": "", "description": "", "definition": pretty_json(STARTER_DEFINITION, sort_keys=False)}
    return render(request, "workflow_new.html", {"form": form, "problems": []}, section="workflows")


@router.post("/workflows/new")
async def create_workflow(
    request: Request,
    user: DeveloperUser,
    name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=10_000)] = "",
    definition: Annotated[str, Form(max_length=2_000_000)] = "",
) -> Response:
    hub = get_hub(request)
    form = {"name": name, "description": description, "definition": definition}
    try:
        data = NewWorkflow(name=name.strip(), description=description, definition=_parse_definition(definition))
        summary, _ = await service.create_workflow(
            hub.db, data, user.actor, max_definition_bytes=hub.settings.max_definition_bytes
        )
    except ValidationError as exc:
        return _form_error(request, "workflow_new.html", {"form": form}, [form_problem(exc)])
    except (ValidationFailed, PayloadTooLarge, Conflict) as exc:
        return _form_error(request, "workflow_new.html", {"form": form}, _problems(exc), exc.status_code)
    return redirect(
        request, f"/workflows/{summary.workflow.id}", "Workflow created as draft version 1: publish it to run it."
    )


def _parse_definition(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"Not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValidationFailed("The definition must be a JSON object")
    return value


def _problems(exc: ExekraError) -> list[str]:
    """Every problem of a refused definition (the service lists them in `details`)."""
    if isinstance(exc.details, dict) and exc.details.get("problems"):
        return [str(p["message"]) if isinstance(p, dict) else str(p) for p in exc.details["problems"]]
    return [exc.message]


def _form_error(
    request: Request, template: str, context: dict[str, Any], problems: list[str], status: int = 422
) -> Response:
    return render(request, template, {**context, "problems": problems}, status=status, section="workflows")


async def _detail(request: Request, workflow_id: str, number: int | None) -> dict[str, Any]:
    hub = get_hub(request)
    summary = await service.get_workflow(hub.db, workflow_id)
    shown_number = number or summary.published_version or summary.latest_version
    shown = await _version(request, workflow_id, shown_number)
    published = (
        shown
        if shown is not None and shown.published
        else await _version(request, workflow_id, summary.published_version)
    )
    recent = await hub.executions.history(
        ExecutionFilter(workflow_id=summary.workflow.id), offset=0, limit=10, cursor=None
    )
    choices, _ = await runners.list_runners(hub.db, offset=0, limit=RUNNER_CHOICES)
    names = await names_of(hub.db, (view.execution for view in recent.rows))
    return {
        "summary": summary,
        "workflow": summary.workflow,
        "shown": shown,
        "published": published,
        "fields": input_fields(published.definition) if published else [],
        "runners": choices,
        "executions": recent.rows,
        "runner_names": names.runners,
        "executions_total": recent.total,
        "run_problems": [],
        "pinned": "",
        # A run form posted twice (a double click, a reload) answers with the execution its first post made.
        "run_key": f"dashboard:{uuid.uuid4()}",
    }


async def _version(request: Request, workflow_id: str, number: int | None) -> WorkflowVersion | None:
    if not number:
        return None
    try:
        return await service.get_version(get_hub(request).db, workflow_id, str(number))
    except NotFound:
        return None


@router.get("/workflows/{workflow_id}")
async def workflow_page(request: Request, workflow_id: str, user: CurrentUser, version: int | None = None) -> Response:
    return render(request, "workflow.html", await _detail(request, workflow_id, version), section="workflows")


@router.post("/workflows/{workflow_id}/publish")
async def publish(request: Request, workflow_id: str, user: DeveloperUser) -> Response:
    """Publish the version the form names (`version`), else the latest draft."""
    back = f"/workflows/{parse_id(workflow_id, 'workflow')}"
    named = str((await request.form()).get("version", ""))
    number = int(named) if named.isdigit() else None
    done = f"Version {number} published." if number else "Latest version published."
    return await attempt(request, back, service.publish(get_hub(request).db, workflow_id, user.actor, number), done)


@router.post("/workflows/{workflow_id}/retry")
async def set_retry(request: Request, workflow_id: str, user: DeveloperUser) -> Response:
    """Set the retry policy from the form, or clear it (`attempts` left empty)."""
    back = f"/workflows/{parse_id(workflow_id, 'workflow')}"
    form = await request.form()

    async def change() -> None:
        policy = None
        if str(form.get("attempts", "")).strip():
            fields = {name: form.get(name) for name in ("attempts", "backoffSeconds", "backoffFactor")}
            policy = RetryPolicy.model_validate({**fields, "on": form.getlist("on")})
        await service.update_workflow(get_hub(request).db, workflow_id, WorkflowPatch(retry=policy), user.actor)

    done = "Retry policy saved." if str(form.get("attempts", "")).strip() else "Automatic retries turned off."
    return await attempt(request, back, change(), done)


@router.post("/workflows/{workflow_id}/concurrency")
async def set_concurrency(request: Request, workflow_id: str, user: DeveloperUser) -> Response:
    """Set the concurrency limit and key from the form, or clear both (`maxConcurrent` left empty)."""
    back = f"/workflows/{parse_id(workflow_id, 'workflow')}"
    form = await request.form()
    limit = str(form.get("maxConcurrent", "")).strip()
    key = str(form.get("concurrencyKey", "")).strip()

    async def change() -> None:
        fields = {"maxConcurrent": limit or None, "concurrencyKey": (key or None) if limit else None}
        patch = WorkflowPatch.model_validate(fields)
        await service.update_workflow(get_hub(request).db, workflow_id, patch, user.actor)

    done = "Concurrency limit saved." if limit else "Concurrency limit turned off."
    return await attempt(request, back, change(), done)


@router.post("/workflows/{workflow_id}/run")
async def run(request: Request, workflow_id: str, user: CurrentUser) -> Response:
    """An interactive run of the published version: trigger MANUAL, priority 9, optionally pinned."""
    context = await _detail(request, workflow_id, None)
    published: WorkflowVersion | None = context["published"]
    if published is None:
        raise Conflict(f"workflow {context['workflow'].name} has no published version: publish one first")
    form = await request.form()
    values, typed, problems = read_inputs(published.definition, form)
    problems += [
        f"version {published.number} does not declare the input '{name}' (the workflow changed since this page "
        "was loaded?): check the form and run again"
        for name in undeclared_fields(published.definition, form)
    ]
    pinned = str(form.get("runner") or "")
    key = str(form.get("idempotencyKey") or "")[:255] or None
    if not problems:
        try:
            execution_id = await _start(get_hub(request), user, context["workflow"].id, values, pinned or None, key)
        except (ValidationFailed, Conflict, NotFound) as exc:
            problems = _problems(exc)
        else:
            return redirect(request, f"/executions/{execution_id}", "Execution queued.")
    context.update(fields=input_fields(published.definition, typed), run_problems=problems, pinned=pinned)
    return render(request, "workflow.html", context, status=422, section="workflows")


async def _start(
    hub: Hub, user: Principal, workflow_id: uuid.UUID, inputs: dict[str, Any], runner_id: str | None, key: str | None
) -> str:
    """Queue the execution as `POST /api/executions` does. The form carries an idempotency key made when it was
    rendered, so a double submit (or a reload that posts again) answers with the same execution."""
    request = ExecutionRequest(
        workflow_id=workflow_id,
        inputs=inputs,
        trigger_type=TriggerType.MANUAL,
        triggered_by=str(user.user_id),
        priority=INTERACTIVE_PRIORITY,
        runner_id=runner_id,
        idempotency_key=key,
    )
    created = await hub.executions.create(request, user.actor)
    return str(created.execution.id)


@router.get("/workflows/{workflow_id}/edit")
async def edit_page(request: Request, workflow_id: str, user: DeveloperUser) -> Response:
    summary = await service.get_workflow(get_hub(request).db, workflow_id)
    latest = await service.get_version(get_hub(request).db, workflow_id, str(summary.latest_version))
    context = {
        "workflow": summary.workflow,
        "latest": latest,
        "definition": pretty_json(latest.definition, sort_keys=False),
        "problems": [],
    }
    return render(request, "workflow_edit.html", context, section="workflows")


@router.post("/workflows/{workflow_id}/edit")
async def save_version(
    request: Request,
    workflow_id: str,
    user: DeveloperUser,
    definition: Annotated[str, Form(max_length=2_000_000)] = "",
) -> Response:
    hub = get_hub(request)
    summary = await service.get_workflow(hub.db, workflow_id)
    try:
        version = await service.create_version(
            hub.db,
            workflow_id,
            _parse_definition(definition),
            user.actor,
            max_definition_bytes=hub.settings.max_definition_bytes,
        )
    except (ValidationFailed, PayloadTooLarge) as exc:
        latest = await service.get_version(hub.db, workflow_id, str(summary.latest_version))
        context = {"workflow": summary.workflow, "latest": latest, "definition": definition}
        return _form_error(request, "workflow_edit.html", context, _problems(exc), exc.status_code)
    return redirect(
        request,
        f"/workflows/{summary.workflow.id}?version={version.number}",
        f"Saved version {version.number} as a draft: publish it to run it.",
    )
