"""The activity catalogue the hub serves: each activity's name, category, description, parameter and output
JSON Schemas and the capability it needs, from the same registry the engine runs (`exekra.workflow.catalogue`).

`activity_catalogue()` is the one place that decides what the catalogue holds: today the activities installed
with the hub (built-ins and plugins); the activities that registered runners declare join here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from exekra.workflow.catalogue import catalogue


@lru_cache(maxsize=1)
def activity_catalogue() -> tuple[dict[str, Any], ...]:
    """Every activity the hub accepts in a definition, sorted by category and name (built once per process:
    building the schemas takes most of a second)."""
    return tuple(sorted(catalogue(), key=lambda entry: (entry["category"], entry["name"])))
