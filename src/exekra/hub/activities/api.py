"""Route: the activity catalogue (any signed-in user)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from exekra.hub.activities.schemas import ActivitiesAnswer
from exekra.hub.activities.service import activity_catalogue
from exekra.hub.deps import CurrentUser

router = APIRouter(prefix="/api/activities", tags=["activities"])


@router.get("", response_model=ActivitiesAnswer)
async def list_activities(user: CurrentUser) -> dict[str, Any]:
    """`{"activities": [{name, category, description, params, outputs, capability}]}`, params and outputs as
    JSON Schema."""
    return {"activities": list(activity_catalogue())}
