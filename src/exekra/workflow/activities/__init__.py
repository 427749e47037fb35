"""Activities: the built-in ones and those that plugins add through entry points.

A plugin package declares, in its `pyproject.toml`::

    [project.entry-points."exekra.activities"]
    acme = "acme_exekra:ACTIVITIES"     # a dict name -> activity, or one activity with a `name`

and the runner picks it up with `load_activities()`; no change to Exekra is needed.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping

from exekra.workflow.activities import control, data, file, http, log, python, shell, variables
from exekra.workflow.activities.context import Activity, ActivityContext, param

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "Activity", "ActivityContext", "load_activities", "param"]

ENTRY_POINT_GROUP = "exekra.activities"

BUILTIN: dict[str, Activity] = {
    "shell.run": shell.run,
    "python.run": python.run,
    "http.request": http.request,
    "file.read": file.read,
    "file.write": file.write,
    "file.copy": file.copy,
    "file.move": file.move,
    "file.delete": file.delete,
    "file.list": file.list_files,
    "json.parse": data.json_parse,
    "csv.read": data.csv_read,
    "csv.write": data.csv_write,
    "log.message": log.message,
    "vars.set": variables.set_var,
    "control.if": control.if_,
    "control.foreach": control.foreach,
    "control.delay": control.delay,
    "control.fail": control.fail,
}

_logger = logging.getLogger(__name__)


def load_activities() -> dict[str, Activity]:
    """Every available activity: the built-ins plus those of each `exekra.activities` entry point.

    An entry point is a dict name -> activity or a single activity with a `name` attribute. A plugin
    that fails to load, or reuses a name already taken, is skipped with a warning, so one broken
    plugin cannot stop a runner; workflows using its activities then fail validation by name.
    """
    activities = dict(BUILTIN)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            provided = _provided_activities(entry_point.load())
        except Exception as exc:
            _logger.warning("activity plugin %r skipped: %s", entry_point.name, exc)
            continue
        for name, activity in provided.items():
            if activities.get(name, activity) is not activity:
                _logger.warning("activity %r of plugin %r skipped: the name is taken", name, entry_point.name)
                continue
            activities[name] = activity
    return activities


def _provided_activities(loaded: object) -> Mapping[str, Activity]:
    if isinstance(loaded, Mapping) and all(
        isinstance(name, str) and callable(activity) for name, activity in loaded.items()
    ):
        return loaded
    name = getattr(loaded, "name", None)
    if callable(loaded) and isinstance(name, str):
        return {name: loaded}
    raise TypeError("expected a dict of activities or an activity with a 'name' attribute")
