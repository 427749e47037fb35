"""Routes: the credential store (ADMIN, DEVELOPER). Responses carry field names, never values."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from exekra.hub.credentials import service
from exekra.hub.credentials.schemas import (
    CredentialAnswer,
    CredentialPage,
    CredentialPatch,
    NewCredential,
    credential_to_api,
)
from exekra.hub.deps import DeveloperUser, HubDep, Paging
from exekra.hub.schemas import OkAnswer

router = APIRouter(prefix="/api/credentials", tags=["credentials"])


@router.get("", response_model=CredentialPage)
async def list_credentials(user: DeveloperUser, hub: HubDep, paging: Paging) -> dict[str, Any]:
    """Credentials by name, each with the published workflow versions that reference it."""
    views, total = await service.list_credentials(hub.db, hub.secret_key, offset=paging.offset, limit=paging.limit)
    async with hub.db.session() as session:
        used = await service.references(session, {credential.name for credential, _ in views})
    return {
        "credentials": [
            {**credential_to_api(*view), "references": [r.to_api() for r in used.get(view[0].name, [])]}
            for view in views
        ],
        "total": total,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": None,
    }


@router.post("", response_model=CredentialAnswer, status_code=201)
async def create_credential(body: NewCredential, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Store a credential; its field values are encrypted and never returned."""
    view = await service.create_credential(hub.db, hub.secret_key, body, user.actor)
    return {"credential": credential_to_api(*view)}


@router.get("/{credential_id}", response_model=CredentialAnswer)
async def get_credential(credential_id: str, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    view = await service.get_credential(hub.db, hub.secret_key, credential_id)
    return {"credential": credential_to_api(*view)}


@router.patch("/{credential_id}", response_model=CredentialAnswer)
async def update_credential(
    credential_id: str, body: CredentialPatch, user: DeveloperUser, hub: HubDep
) -> dict[str, Any]:
    """Rename, change the type, or replace all fields."""
    view = await service.update_credential(hub.db, hub.secret_key, credential_id, body, user.actor)
    return {"credential": credential_to_api(*view)}


@router.delete("/{credential_id}", response_model=OkAnswer)
async def delete_credential(
    credential_id: str, user: DeveloperUser, hub: HubDep, force: Annotated[bool, Query()] = False
) -> dict[str, Any]:
    """Delete a credential; `409` while a published version references it, unless `?force=true`."""
    await service.delete_credential(hub.db, credential_id, user.actor, force=force)
    return {"ok": True}
