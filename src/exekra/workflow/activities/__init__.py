"""Activities: the built-in ones and those that plugins add through entry points.

A plugin package declares, in its `pyproject.toml`::

    [project.entry-points."exekra.activities"]
    acme = "acme_exekra:ACTIVITIES"     # a dict name -> activity, or one activity with a `name`

and the runner picks it up with `load_activities()`; no change to Exekra is needed. An activity made
with `@activity(...)` (see `spec`) brings its params and outputs schemas to the catalogue; a bare
callable `(ctx, params) -> outputs` still works and is listed with a schema that accepts anything.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exekra.workflow.activities import (
    browser,
    control,
    data,
    email,
    excel,
    file,
    http,
    log,
    pdf,
    python,
    shell,
    sql,
    subworkflow,
    variables,
)
from exekra.workflow.activities.context import Activity, ActivityContext, param
from exekra.workflow.activities.spec import ActivitySpec, DeclaredActivity, Params, activity, either, minimal_spec

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Activity",
    "ActivityContext",
    "ActivitySpec",
    "InstalledActivity",
    "Params",
    "activity",
    "either",
    "installed_activities",
    "load_activities",
    "param",
    "spec_of",
]

ENTRY_POINT_GROUP = "exekra.activities"
PACKAGE = "exekra"

_DECLARED: tuple[DeclaredActivity[Any], ...] = (
    shell.run,
    python.run,
    http.request,
    file.read,
    file.write,
    file.copy,
    file.move,
    file.delete,
    file.list_files,
    file.attach,
    data.json_parse,
    data.csv_read,
    data.csv_write,
    log.message,
    variables.set_var,
    control.if_,
    control.foreach,
    control.join,
    control.delay,
    control.fail,
    subworkflow.run,
    *browser.ACTIVITIES,
    sql.query,
    sql.execute,
    email.send,
    email.read,
    excel.read,
    excel.write,
    excel.append,
    pdf.read_text,
    pdf.extract_tables,
)
BUILTIN: dict[str, Activity] = {declared.name: declared for declared in _DECLARED}

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstalledActivity:
    """An activity that can run here, with its catalogue entry (naming the package that provides it)."""

    activity: Activity
    spec: ActivitySpec


def load_activities() -> dict[str, Activity]:
    """Every available activity by name: the built-ins plus those of each `exekra.activities` entry point."""
    return {name: installed.activity for name, installed in installed_activities().items()}


def installed_activities() -> dict[str, InstalledActivity]:
    """Every available activity with its spec: the built-ins plus those of each entry point.

    An entry point is a dict name -> activity or a single activity with a `name` attribute. A plugin
    that fails to load, or reuses a name already taken, is skipped with a warning, so one broken
    plugin cannot stop a runner; workflows using its activities then fail validation by name.
    """
    version = _version(PACKAGE)
    installed = {
        name: InstalledActivity(run, spec_of(name, run).provided_by(PACKAGE, version)) for name, run in BUILTIN.items()
    }
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            provided = _provided_activities(entry_point.load())
        except Exception as exc:
            _logger.warning("activity plugin %r skipped: %s", entry_point.name, exc)
            continue
        distribution = getattr(entry_point, "dist", None)
        package = distribution.name if distribution is not None else None
        package_version = distribution.version if distribution is not None else None
        for name, run in provided.items():
            taken = installed.get(name)
            if taken is not None:
                if taken.activity is not run:
                    _logger.warning("activity %r of plugin %r skipped: the name is taken", name, entry_point.name)
                continue
            installed[name] = InstalledActivity(run, spec_of(name, run).provided_by(package, package_version))
    return installed


def spec_of(name: str, run: Activity) -> ActivitySpec:
    """The declared spec of an activity made with `@activity`, else a minimal one (any params)."""
    spec = getattr(run, "spec", None)
    if isinstance(spec, ActivitySpec) and spec.name == name:
        return spec
    return minimal_spec(name, run)


def _provided_activities(loaded: object) -> Mapping[str, Activity]:
    if isinstance(loaded, Mapping) and all(
        isinstance(name, str) and callable(activity) for name, activity in loaded.items()
    ):
        return loaded
    name = getattr(loaded, "name", None)
    if callable(loaded) and isinstance(name, str):
        return {name: loaded}
    raise TypeError("expected a dict of activities or an activity with a 'name' attribute")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
