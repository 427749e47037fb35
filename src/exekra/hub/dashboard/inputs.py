"""The run form: fields generated from a definition's `inputs`, and the typed values read back from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from exekra.hub.dashboard.formatting import pretty_json
from exekra.workflow.definition import undeclared_inputs

FIELD_PREFIX = "input."


@dataclass(frozen=True)
class InputField:
    name: str
    type: str  # string, integer, number, boolean, object, array
    required: bool
    description: str
    value: str  # what the form shows: the default, or what the user typed last time

    @property
    def form_name(self) -> str:
        return FIELD_PREFIX + self.name


def _shown(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("object", "array"):
        return pretty_json(value)
    return str(value)


def input_fields(definition: Mapping[str, Any], typed: Mapping[str, str] | None = None) -> list[InputField]:
    """One field per declared input, in declaration order, showing `typed` values over defaults."""
    fields = []
    for name, spec in (definition.get("inputs") or {}).items():
        kind = spec.get("type", "string")
        value = typed[name] if typed and name in typed else _shown(kind, spec.get("default"))
        fields.append(InputField(name, kind, bool(spec.get("required")), spec.get("description") or "", value))
    return fields


def read_inputs(
    definition: Mapping[str, Any], form: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The typed inputs of a submitted run form, the raw texts (to show again) and the problems found.

    A blank field is left out, so that the definition's default (or its "required" rule) applies.
    """
    values: dict[str, Any] = {}
    typed: dict[str, str] = {}
    problems: list[str] = []
    for name, spec in (definition.get("inputs") or {}).items():
        raw = form.get(FIELD_PREFIX + name)
        text = raw.strip() if isinstance(raw, str) else ""
        typed[name] = text
        if not text:
            continue
        kind = spec.get("type", "string")
        try:
            values[name] = _parse(kind, text)
        except ValueError as exc:
            problems.append(f"input '{name}': {exc}")
    return values, typed, problems


def undeclared_fields(definition: Mapping[str, Any], form: Mapping[str, Any]) -> list[str]:
    """Input fields of a submitted form that the definition does not declare: a form loaded before the
    workflow changed (they would be dropped without a word)."""
    given = {key[len(FIELD_PREFIX) :]: True for key in form if key.startswith(FIELD_PREFIX)}
    return undeclared_inputs(definition, given)


def _parse(kind: str, text: str) -> Any:
    if kind == "string":
        return text
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError("must be true or false")
        return text == "true"
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc})") from None
