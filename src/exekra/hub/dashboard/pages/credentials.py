"""Credentials (ADMIN, DEVELOPER): list them with what references them, create, replace values, delete.

Values go in and never come back: the pages show field names only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from exekra.hub.credentials import service
from exekra.hub.credentials.schemas import CredentialPatch, NewCredential
from exekra.hub.dashboard.web import PageRoute, form_problem, redirect, render
from exekra.hub.deps import DeveloperUser, PageNumber, get_hub
from exekra.hub.errors import Conflict, ExekraError
from exekra.hub.lookup import parse_id

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50
FIELD_ROWS = 6
FIELD_LIMIT = 50


def read_fields(form: FormData) -> dict[str, str]:
    """The `field-name-N` / `field-value-N` pairs of a form (rows with no name are skipped)."""
    fields: dict[str, str] = {}
    for index in range(FIELD_LIMIT):
        name = str(form.get(f"field-name-{index}") or "").strip()
        if name:
            fields[name] = str(form.get(f"field-value-{index}") or "")
    return fields


async def _list_context(request: Request, page: int) -> dict[str, Any]:
    hub = get_hub(request)
    page = max(1, page)
    views, total = await service.list_credentials(
        hub.db, hub.secret_key, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    async with hub.db.session() as session:
        used = await service.references(session, {credential.name for credential, _ in views})
    return {
        "credentials": views,
        "references": used,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "field_rows": range(FIELD_ROWS),
        "form": {"name": "", "type": "generic", "fields": []},
        "error": None,
    }


@router.get("/credentials")
async def credentials_page(request: Request, user: DeveloperUser, page: PageNumber = 1) -> Response:
    return render(request, "credentials.html", await _list_context(request, page), section="credentials")


@router.post("/credentials")
async def create_credential(request: Request, user: DeveloperUser) -> Response:
    hub = get_hub(request)
    form = await request.form()
    name, kind = str(form.get("name") or "").strip(), str(form.get("type") or "").strip() or "generic"
    fields = read_fields(form)
    try:
        data = NewCredential(name=name, type=kind, fields=fields)
        credential, _ = await service.create_credential(hub.db, hub.secret_key, data, user.actor)
    except (ValidationError, Conflict) as exc:
        context = await _list_context(request, 1)
        context["form"] = {"name": name, "type": kind, "fields": list(fields)}  # names only: values are not echoed
        context["error"] = form_problem(exc) if isinstance(exc, ValidationError) else exc.message
        return render(request, "credentials.html", context, status=422, section="credentials")
    return redirect(
        request,
        "/credentials",
        f"Credential {credential.name} saved. Use it as {{{{ credentials.{credential.name}.<field> }}}}.",
    )


@router.get("/credentials/{credential_id}")
async def credential_page(request: Request, credential_id: str, user: DeveloperUser) -> Response:
    hub = get_hub(request)
    credential, field_names = await service.get_credential(hub.db, hub.secret_key, credential_id)
    async with hub.db.session() as session:
        used = (await service.references(session, {credential.name})).get(credential.name, [])
    context = {
        "credential": credential,
        "field_names": field_names or [],
        "field_rows": range(max(FIELD_ROWS, len(field_names or []) + 2)),
        "references": used,
    }
    return render(request, "credential.html", context, section="credentials")


def _back(credential_id: str) -> str:
    return f"/credentials/{parse_id(credential_id, 'credential')}"


@router.post("/credentials/{credential_id}/replace")
async def replace_values(request: Request, credential_id: str, user: DeveloperUser) -> Response:
    """Replace every field (the old values are gone); a new type may come with them."""
    hub = get_hub(request)
    form = await request.form()
    kind = str(form.get("type") or "").strip()
    try:
        patch = CredentialPatch(fields=read_fields(form), **({"type": kind} if kind else {}))
        credential, _ = await service.update_credential(hub.db, hub.secret_key, credential_id, patch, user.actor)
    except ValidationError as exc:
        return redirect(request, _back(credential_id), form_problem(exc), "error")
    return redirect(request, _back(credential_id), f"New values of {credential.name} saved.")


@router.post("/credentials/{credential_id}/delete")
async def delete_credential(request: Request, credential_id: str, user: DeveloperUser) -> Response:
    form = await request.form()
    force = form.get("force") == "true"
    try:
        await service.delete_credential(get_hub(request).db, credential_id, user.actor, force=force)
    except ExekraError as exc:
        if isinstance(exc, Conflict):
            return redirect(request, _back(credential_id), exc.message, "error")
        raise
    return redirect(request, "/credentials", "Credential deleted.")
