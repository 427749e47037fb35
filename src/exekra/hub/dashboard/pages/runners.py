"""Runners: the live table, a runner's detail with metric history, and the admin's controls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from exekra.hub.dashboard import charts
from exekra.hub.dashboard.web import PageRoute, attempt, form_problem, redirect, render
from exekra.hub.deps import AdminUser, CurrentUser, PageNumber, get_hub
from exekra.hub.errors import Conflict, LicenseLimit
from exekra.hub.executions.queries import ExecutionFilter
from exekra.hub.lookup import parse_id
from exekra.hub.runners import service
from exekra.hub.runners.models import RunnerStatus
from exekra.hub.runners.schemas import NewRunner, RunnerPatch

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50
HISTORY_HOURS = (1, 24, 168)  # 1 h, 24 h, 7 d (heartbeat metrics are kept 7 days by default)
HISTORY_POINTS = 240  # buckets per chart, averaged by the database


def split_labels(text: str) -> list[str]:
    """`"gpu, big"` -> `["gpu", "big"]` (the service trims, de-duplicates and sorts)."""
    return [label for label in (part.strip() for part in text.replace("\n", ",").split(",")) if label]


def _status(value: str | None) -> RunnerStatus | None:
    return RunnerStatus(value) if value and value in RunnerStatus.__members__ else None


async def _table(request: Request, status: str | None, page: int) -> dict[str, Any]:
    page = max(1, page)
    runners, total = await service.list_runners(
        get_hub(request).db, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, status=_status(status)
    )
    return {
        "runners": runners,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "status": _status(status) or "",
        "statuses": list(RunnerStatus),
        "now": datetime.now(UTC),
    }


@router.get("/runners")
async def runners_page(
    request: Request, user: CurrentUser, status: str | None = None, page: PageNumber = 1
) -> Response:
    context = await _table(request, status, page)
    return render(request, "runners.html", {**context, "form": {}}, section="runners")


@router.get("/runners/rows")
async def runner_rows(request: Request, user: CurrentUser, status: str | None = None, page: PageNumber = 1) -> Response:
    """The table body, refreshed by htmx every few seconds (live status and metrics)."""
    return render(request, "_runner_rows.html", await _table(request, status, page))


@router.post("/runners")
async def register_runner(
    request: Request,
    admin: AdminUser,
    name: Annotated[str, Form(max_length=200)] = "",
    type: Annotated[str, Form(max_length=100)] = "",
    labels: Annotated[str, Form(max_length=6000)] = "",
) -> Response:
    form = {"name": name, "type": type, "labels": labels}
    hub = get_hub(request)
    try:
        data = NewRunner(name=name.strip(), type=type.strip() or None, labels=split_labels(labels))
        registered = await service.register_runner(hub.db, data, admin.actor, hub.licensing)
    except (ValidationError, Conflict, LicenseLimit) as exc:
        error = form_problem(exc) if isinstance(exc, ValidationError) else exc.message
        context = await _table(request, None, 1)
        return render(request, "runners.html", {**context, "form": form, "error": error}, status=422, section="runners")
    return _credentials(request, registered, new=True)


def _credentials(request: Request, registered: service.Registered, *, new: bool) -> Response:
    """The one page that shows a machine secret; never cached, never shown again."""
    return render(
        request,
        "runner_secret.html",
        {
            "runner": registered.runner,
            "machine_key": registered.machine_key,
            "secret": registered.machine_secret,
            "new": new,
            "hub_url": get_hub(request).settings.public_url or str(request.base_url).rstrip("/"),
        },
        status=201 if new else 200,
        section="runners",
        headers={"Cache-Control": "no-store"},
    )


async def _detail(request: Request, runner_id: str, hours: int) -> dict[str, Any]:
    hub = get_hub(request)
    runner = await service.get_runner(hub.db, runner_id)
    hours = hours if hours in HISTORY_HOURS else 1
    since = datetime.now(UTC) - timedelta(hours=hours)
    step = timedelta(hours=hours) / HISTORY_POINTS
    buckets = await service.metric_buckets(hub.db, runner_id, since, step)
    recent = await hub.executions.history(ExecutionFilter(runner_id=runner.id), offset=0, limit=20, cursor=None)
    return {
        "runner": runner,
        "hours": hours,
        "history_hours": HISTORY_HOURS,
        "samples": sum(b.samples for b in buckets),
        "metrics_chart": charts.runner_metrics(buckets, timedelta(hours=hours)) if buckets else None,
        "executions": recent.rows,
        "executions_total": recent.total,
        "now": datetime.now(UTC),
    }


@router.get("/runners/{runner_id}")
async def runner_page(request: Request, runner_id: str, user: CurrentUser, hours: int = 1) -> Response:
    return render(request, "runner.html", await _detail(request, runner_id, hours), section="runners")


@router.get("/runners/{runner_id}/live")
async def runner_live(request: Request, runner_id: str, user: CurrentUser) -> Response:
    runner = await service.get_runner(get_hub(request).db, runner_id)
    return render(request, "_runner_live.html", {"runner": runner, "now": datetime.now(UTC)})


@router.post("/runners/{runner_id}/edit")
async def edit_runner(
    request: Request,
    runner_id: str,
    admin: AdminUser,
    name: Annotated[str, Form(max_length=200)] = "",
    type: Annotated[str, Form(max_length=100)] = "",
    labels: Annotated[str, Form(max_length=6000)] = "",
) -> Response:
    async def save() -> None:
        fields: dict[str, Any] = {"type": type.strip() or None, "labels": split_labels(labels)}
        if name.strip():
            fields["name"] = name.strip()
        await service.update_runner(get_hub(request).db, runner_id, RunnerPatch(**fields), admin.actor)

    return await attempt(request, f"/runners/{parse_id(runner_id, 'runner')}", save(), "Runner saved.")


@router.post("/runners/{runner_id}/enable")
async def enable_runner(request: Request, runner_id: str, admin: AdminUser) -> Response:
    return await _set_enabled(request, runner_id, admin, True)


@router.post("/runners/{runner_id}/disable")
async def disable_runner(request: Request, runner_id: str, admin: AdminUser) -> Response:
    return await _set_enabled(request, runner_id, admin, False)


async def _set_enabled(request: Request, runner_id: str, admin: AdminUser, enabled: bool) -> Response:
    back = f"/runners/{parse_id(runner_id, 'runner')}"
    update = service.update_runner(get_hub(request).db, runner_id, RunnerPatch(enabled=enabled), admin.actor)
    message = "Runner enabled: it is offered work again." if enabled else "Runner disabled: it gets no new work."
    return await attempt(request, back, update, message)


@router.post("/runners/{runner_id}/regenerate-secret")
async def regenerate_secret(request: Request, runner_id: str, admin: AdminUser) -> Response:
    registered = await service.regenerate_secret(get_hub(request).db, runner_id, admin.actor)
    return _credentials(request, registered, new=False)


@router.post("/runners/{runner_id}/delete")
async def delete_runner(request: Request, runner_id: str, admin: AdminUser) -> Response:
    back = f"/runners/{parse_id(runner_id, 'runner')}"
    try:
        await service.delete_runner(get_hub(request).db, runner_id, admin.actor)
    except Conflict as exc:
        return redirect(request, back, exc.message, "error")
    return redirect(request, "/runners", "Runner deleted.")
