"""The activity catalogue the hub serves and validates definitions against: each activity's name, category,
description, parameter and output JSON Schemas and the capability it needs.

The one place that decides what the catalogue holds: the activities installed with the hub (built-ins and any
plugin installed here), plus every activity a registered runner declares (docs/runner.md). A plugin installed
on the runners only is therefore known to the hub as soon as one of them signs in.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import text

from exekra.db.session import Database
from exekra.workflow.catalogue import catalogue

# Plugin entries that registered runners declared, one per name: the one of the runner heard from most recently.
_DECLARED_ENTRIES = text(
    """
SELECT DISTINCT ON (entry->>'name') entry
  FROM runners, jsonb_array_elements(runners.plugin_activities) AS entry
 ORDER BY entry->>'name', last_heartbeat_at DESC NULLS LAST"""
)
_DECLARED_NAMES = text("SELECT DISTINCT declared.name FROM runners, unnest(runners.activities) AS declared(name)")


@lru_cache(maxsize=1)
def installed_catalogue() -> tuple[dict[str, Any], ...]:
    """The activities installed with the hub (built once per process: building the schemas takes most of a
    second)."""
    return tuple(catalogue())


@lru_cache(maxsize=1)
def _installed_names() -> frozenset[str]:
    return frozenset(entry["name"] for entry in installed_catalogue())


async def activity_catalogue(db: Database) -> list[dict[str, Any]]:
    """Every activity a definition may use, sorted by category and name: those installed with the hub, and those
    registered runners declare that the hub lacks."""
    installed = _installed_names()
    async with db.session() as session:
        declared = [row.entry for row in await session.execute(_DECLARED_ENTRIES)]
    entries = [*installed_catalogue(), *(entry for entry in declared if entry["name"] not in installed)]
    return sorted(entries, key=lambda entry: (entry["category"], entry["name"]))


async def known_activities(db: Database) -> set[str]:
    """The names a definition may use: those installed with the hub and those some registered runner declares."""
    async with db.session() as session:
        declared = {row.name for row in await session.execute(_DECLARED_NAMES)}
    return declared | _installed_names()
