"""The overview: executions by status, the queue and its mode, throughput, runner utilisation, failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from exekra.hub.dashboard import charts
from exekra.hub.dashboard.web import PageRoute, render
from exekra.hub.deps import CurrentUser, get_hub
from exekra.hub.leader import current_leader
from exekra.hub.stats import service as stats_service

router = APIRouter(route_class=PageRoute)

WINDOWS = (1, 6, 24, 168)  # hours of throughput the overview offers


async def _context(request: Request, hours: int) -> dict[str, Any]:
    hub = get_hub(request)
    hours = hours if hours in WINDOWS else 24
    window = timedelta(hours=hours)
    stats = await stats_service.collect_stats(
        hub.db, queue_mode=hub.dispatcher.mode, window=window, bucket=stats_service.default_bucket(window)
    )
    return {
        "stats": stats,
        "hours": hours,
        "windows": WINDOWS,
        "window_label": "7 days" if hours == 168 else f"{hours} h",
        "bucket_label": _period(stats.bucket),
        "total": stats.window_total,
        "throughput_chart": charts.throughput(stats),
        "runners_chart": charts.runner_utilisation(stats.runners),
        "leader": await current_leader(hub.db),
        "this_instance": hub.leader.instance if hub.leader else None,
    }


def _period(step: timedelta) -> str:
    minutes = int(step.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


@router.get("/")
async def overview(request: Request, user: CurrentUser, hours: int = 24) -> Response:
    context = await _context(request, hours)
    context["failures"] = await stats_service.recent_failures(get_hub(request).db, limit=8)
    return render(request, "overview.html", context, section="overview")


@router.get("/overview/live")
async def overview_live(request: Request, user: CurrentUser, hours: int = 24) -> Response:
    """The numbers and charts of the overview, re-rendered every few seconds by htmx."""
    return render(request, "_overview_live.html", await _context(request, hours))
