"""The dashboard's routes, served at `/`, and its static assets at `/assets` (all inside the package)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from exekra.hub.dashboard.pages import (
    account,
    alerts,
    audit,
    credentials,
    executions,
    license,
    me,
    overview,
    runners,
    studio,
    triggers,
    users,
    workflows,
)
from exekra.hub.dashboard.web import PAGE_DEPENDENCIES, STATIC_DIR, PageRoute

ASSETS_PATH = "/assets"

router = APIRouter(route_class=PageRoute, dependencies=PAGE_DEPENDENCIES, include_in_schema=False)
for section in (
    account,
    overview,
    runners,
    studio,
    workflows,
    executions,
    triggers,
    alerts,
    credentials,
    users,
    audit,
    license,
    me,
):
    router.include_router(section.router)


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard pages and their assets (htmx, Chart.js, stylesheet) from this hub."""
    app.include_router(router)
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-assets")
