"""Routes: user administration (ADMIN)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from exekra.hub.deps import AdminUser, HubDep, Paging
from exekra.hub.schemas import OkAnswer
from exekra.hub.users import service
from exekra.hub.users.schemas import UserAnswer, UserPage, UserPatch, user_to_api

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("", response_model=UserPage)
async def list_users(
    admin: AdminUser, hub: HubDep, paging: Paging, search: Annotated[str | None, Query(max_length=200)] = None
) -> dict[str, Any]:
    users, total = await service.list_users(hub.db, offset=paging.offset, limit=paging.limit, search=search)
    return {
        "users": [user_to_api(u) for u in users],
        "total": total,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": None,
    }


@router.patch("/{user_id}", response_model=UserAnswer)
async def update_user(user_id: str, body: UserPatch, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    return {"user": user_to_api(await service.update_user(hub.db, user_id, body, admin.actor))}


@router.delete("/{user_id}", response_model=OkAnswer)
async def delete_user(user_id: str, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    await service.delete_user(hub.db, user_id, admin.actor)
    return {"ok": True}
