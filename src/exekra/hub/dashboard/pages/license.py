"""The licence (SPEC §10.7): its status for every signed-in user, the upload for ADMINs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from exekra.hub.dashboard.web import PageRoute, redirect, render
from exekra.hub.deps import AdminUser, CurrentUser, get_hub
from exekra.hub.errors import ValidationFailed
from exekra.hub.license.envelope import MAX_FILE_CHARS

router = APIRouter(route_class=PageRoute)


@router.get("/license")
async def license_page(request: Request, user: CurrentUser) -> Response:
    status, runners = await get_hub(request).licensing.status_with_runners()
    return render(request, "license.html", {"licence": status, "runners": runners}, section="license")


@router.post("/license")
async def install_license(
    request: Request, admin: AdminUser, license: Annotated[str, Form(max_length=MAX_FILE_CHARS)] = ""
) -> Response:
    """Install the pasted `.lic` text (the page reads a chosen file into the field)."""
    try:
        status = await get_hub(request).licensing.install(license.strip(), admin.actor)
    except ValidationFailed as exc:
        return redirect(request, "/license", f"Licence refused: {exc.message}", "error")
    assert status.terms is not None
    return redirect(request, "/license", f"Licence of {status.terms.licensee} installed.")
