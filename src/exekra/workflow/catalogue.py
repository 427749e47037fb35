"""The activity catalogue and this machine's capabilities.

The hub serves the catalogue (`GET /api/activities`) to the visual designer; a runner declares the
activities it can run and its capabilities (`browser`, `sql`, `email`, `excel`, `pdf`), so that the hub
hands it only executions it can run. An activity whose capability this machine lacks (no Chromium,
no openpyxl...) is not declared by its runner.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exekra.workflow.activities import BUILTIN, InstalledActivity, installed_activities
from exekra.workflow.activities.browser import find_chromium
from exekra.workflow.definition import WorkflowDefinition, used_activities
from exekra.workflow.scope import ActivitySettings

__all__ = [
    "CAPABILITIES",
    "EVERY_RUNNER",
    "RunnerCatalogue",
    "catalogue",
    "detect_capabilities",
    "required_activities",
    "runner_catalogue",
]


def _modules(*names: str) -> Callable[[ActivitySettings], bool]:
    return lambda settings: all(importlib.util.find_spec(name) is not None for name in names)


def _browser(settings: ActivitySettings) -> bool:
    return _modules("playwright")(settings) and find_chromium(settings.chromium) is not None


CAPABILITIES: dict[str, Callable[[ActivitySettings], bool]] = {
    "browser": _browser,
    "sql": _modules("sqlalchemy"),
    "email": _modules("imapclient"),
    "excel": _modules("openpyxl"),
    "pdf": _modules("pdfplumber"),
}
"""The capabilities Exekra knows, each with its test: the Python packages it needs are installed and,
for `browser`, a Chromium executable is found. A plugin may name a capability of its own: it counts as
present wherever the plugin is installed."""


EVERY_RUNNER: frozenset[str] = frozenset(
    name for name, run in BUILTIN.items() if getattr(run, "capability", None) is None
)
"""The built-in activities that need no capability (shell, python, http, files, data, control...): every runner
declares them, and a runner that declares nothing (an older agent) is taken to have exactly these."""


def required_activities(definition: WorkflowDefinition | Mapping[str, Any]) -> list[str]:
    """What a runner must declare to run this definition, sorted: the activities it uses beyond `EVERY_RUNNER`.

    Leaving out what every runner has keeps matching cheap: most workflows require nothing, and executions with
    equal requirements share one queue in Redis (docs/queue.md)."""
    return sorted(used_activities(definition) - EVERY_RUNNER)


def detect_capabilities(settings: ActivitySettings | None = None) -> list[str]:
    """The known capabilities this machine has, sorted."""
    resolved = settings or ActivitySettings()
    return sorted(name for name, present in CAPABILITIES.items() if present(resolved))


def catalogue(activities: Mapping[str, InstalledActivity] | None = None) -> list[dict[str, Any]]:
    """Every installed activity (built-ins and plugins), sorted by name, as catalogue entries:
    `{name, category, description, params, outputs, capability, package, version}`."""
    installed = installed_activities() if activities is None else activities
    return [installed[name].spec.to_dict() for name in sorted(installed)]


@dataclass(frozen=True)
class RunnerCatalogue:
    """What one runner declares: its capabilities and the activities it can run."""

    capabilities: list[str]
    activities: list[dict[str, Any]]

    @property
    def names(self) -> list[str]:
        """The names of the activities, sorted."""
        return [entry["name"] for entry in self.activities]

    @property
    def digest(self) -> str:
        """A SHA-256 of the declaration, so a heartbeat can say "unchanged" without sending it again."""
        canonical = json.dumps(
            {"capabilities": self.capabilities, "activities": self.activities}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """`{capabilities, activities, digest}` as a runner would send it."""
        return {"capabilities": self.capabilities, "activities": self.activities, "digest": self.digest}


def runner_catalogue(
    settings: ActivitySettings | None = None, activities: Mapping[str, InstalledActivity] | None = None
) -> RunnerCatalogue:
    """The declaration of this machine: the activities whose capability it has, and the capabilities
    (known ones found here, plus those plugin activities name)."""
    detected = set(detect_capabilities(settings))
    entries = [
        entry
        for entry in catalogue(activities)
        if entry["capability"] is None or entry["capability"] in detected or entry["capability"] not in CAPABILITIES
    ]
    plugin_capabilities = {entry["capability"] for entry in entries if entry["capability"] not in (None, *CAPABILITIES)}
    return RunnerCatalogue(sorted(detected | plugin_capabilities), entries)
