"""The activity catalogue's API shape."""

from __future__ import annotations

from typing import Any

from exekra.hub.schemas import ApiAnswer


class ActivityOut(ApiAnswer):
    """One activity a definition may use; `params` and `outputs` are JSON Schema objects."""

    name: str
    category: str
    description: str
    params: dict[str, Any]
    outputs: dict[str, Any]
    capability: str | None
    package: str | None
    version: str | None


class ActivitiesAnswer(ApiAnswer):
    activities: list[ActivityOut]
