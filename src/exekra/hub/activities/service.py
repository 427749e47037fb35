"""The activity catalogue: each activity's name, category, description, parameter and output JSON Schemas.

`activity_catalogue()` is the one place that decides where the catalogue comes from. Today it reads the
schemas of the built-in activities from `builtin`, plus a bare entry for any other activity the hub knows
(a plugin), so that every name the hub accepts can be picked in the designer.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from exekra.hub.activities.builtin import BUILTIN_ACTIVITIES
from exekra.workflow.activities import load_activities

PLUGIN_CATEGORY = "Plugins"


def _bare(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "category": PLUGIN_CATEGORY,
        "description": "",
        "params": {"type": "object", "additionalProperties": True},
        "outputs": {"type": "object", "additionalProperties": True},
    }


@lru_cache(maxsize=1)
def activity_catalogue() -> tuple[dict[str, Any], ...]:
    """Every activity the hub accepts in a definition, sorted by category and name (read once per process)."""
    described = {entry["name"]: {**entry, "capability": None} for entry in BUILTIN_ACTIVITIES}
    for name in load_activities():
        described.setdefault(name, {**_bare(name), "capability": None})
    return tuple(sorted(described.values(), key=lambda entry: (entry["category"], entry["name"])))
