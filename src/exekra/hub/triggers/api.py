"""Routes: trigger management (read: any user; write: ADMIN, DEVELOPER)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from exekra.hub.context import Hub
from exekra.hub.deps import CurrentUser, DeveloperUser, HubDep, Paging
from exekra.hub.lookup import IdPrefixQuery
from exekra.hub.schemas import OkAnswer
from exekra.hub.triggers import service
from exekra.hub.triggers.models import Trigger, TriggerKind
from exekra.hub.triggers.schemas import (
    NewTrigger,
    TriggerAnswer,
    TriggerPage,
    TriggerPatch,
    TriggerWithToken,
    trigger_to_api,
)

router = APIRouter(prefix="/api/triggers", tags=["triggers"])


def _with_token(hub: Hub, request: Request, trigger: Trigger, token: str | None) -> dict[str, Any]:
    """The trigger, plus its webhook token and URL in the answers that create or rotate one."""
    answer: dict[str, Any] = {"trigger": trigger_to_api(trigger)}
    if token is not None:
        base = (hub.settings.public_url or str(request.base_url)).rstrip("/")
        answer["token"] = token
        answer["url"] = f"{base}/api/webhooks/{token}"
    return answer


@router.get("", response_model=TriggerPage)
async def list_triggers(
    user: CurrentUser,
    hub: HubDep,
    paging: Paging,
    id_prefix: IdPrefixQuery,
    workflow_id: Annotated[str | None, Query(alias="workflowId", max_length=64)] = None,
    type: Annotated[TriggerKind | None, Query()] = None,
) -> dict[str, Any]:
    """Triggers by name, optionally of one workflow or one type."""
    triggers, total = await service.list_triggers(
        hub.db, workflow_id=workflow_id, kind=type, offset=paging.offset, limit=paging.limit, id_prefix=id_prefix
    )
    return {
        "triggers": [trigger_to_api(t) for t in triggers],
        "total": total,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": None,
    }


@router.post("", response_model=TriggerWithToken, response_model_exclude_unset=True, status_code=201)
async def create_trigger(body: NewTrigger, request: Request, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Create a schedule or webhook trigger; a webhook's token and URL are shown only in this answer."""
    trigger, token = await service.create_trigger(hub.db, body, user.actor)
    return _with_token(hub, request, trigger, token)


@router.get("/{trigger_id}", response_model=TriggerAnswer)
async def get_trigger(trigger_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"trigger": trigger_to_api(await service.get_trigger(hub.db, trigger_id))}


@router.patch("/{trigger_id}", response_model=TriggerAnswer)
async def update_trigger(trigger_id: str, body: TriggerPatch, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Change name, inputs, `enabled`, or a schedule's expression or timezone (which restarts it)."""
    return {"trigger": trigger_to_api(await service.update_trigger(hub.db, trigger_id, body, user.actor))}


@router.delete("/{trigger_id}", response_model=OkAnswer)
async def delete_trigger(trigger_id: str, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    await service.delete_trigger(hub.db, trigger_id, user.actor)
    return {"ok": True}


@router.post("/{trigger_id}/rotate-token", response_model=TriggerWithToken, response_model_exclude_unset=True)
async def rotate_token(trigger_id: str, request: Request, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """A new webhook token (and so a new URL); the old one stops working at once."""
    trigger, token = await service.rotate_token(hub.db, trigger_id, user.actor)
    return _with_token(hub, request, trigger, token)
