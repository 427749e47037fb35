"""Route: the activity catalogue (any signed-in user)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from exekra.hub.activities.schemas import ActivitiesAnswer
from exekra.hub.activities.service import activity_catalogue
from exekra.hub.deps import CurrentUser, HubDep

router = APIRouter(prefix="/api/activities", tags=["activities"])


@router.get("", response_model=ActivitiesAnswer)
async def list_activities(user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """`{"activities": [{name, category, description, params, outputs, capability}]}`, params and outputs as
    JSON Schema: the built-ins plus every activity a registered runner declares."""
    return {"activities": await activity_catalogue(hub.db)}
