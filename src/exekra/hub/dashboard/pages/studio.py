"""Studio: the visual designer of a workflow (`/workflows/{id}/design`), drawn by the Studio bundle.

The page hands the bundle the workflow, its latest version and its version list; the bundle then talks to
the JSON API with the session cookie (activity catalogue, credentials, saving, publishing, settings).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from exekra.hub.dashboard.web import PageRoute, csrf_token, render
from exekra.hub.deps import CurrentUser, get_hub
from exekra.hub.users.models import Role
from exekra.hub.workflows import service
from exekra.hub.workflows.schemas import workflow_to_api

router = APIRouter(route_class=PageRoute)


@router.get("/workflows/{workflow_id}/design")
async def design_page(request: Request, workflow_id: str, user: CurrentUser) -> Response:
    db = get_hub(request).db
    summary = await service.get_workflow(db, workflow_id)
    latest = await service.get_version(db, workflow_id, str(summary.latest_version))
    can_edit = user.role in (Role.ADMIN, Role.DEVELOPER) and not summary.workflow.archived
    boot = {
        "workflow": workflow_to_api(summary),
        "latest": {"number": latest.number, "published": latest.published, "definition": latest.definition},
        "versions": [{"number": v.number, "published": v.published} for v in summary.versions],
        "canEdit": can_edit,
        "csrf": csrf_token(request),
    }
    context = {"workflow": summary.workflow, "boot": boot, "can_edit": can_edit}
    return render(request, "workflow_design.html", context, section="workflows")
