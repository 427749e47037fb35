"""Declaring an activity: params and outputs as pydantic models, one source for validation and schema.

An activity is a function `(ctx, params) -> outputs` decorated with `@activity(...)`. Its params model
validates the rendered params before the call (a problem becomes an `ActivityError` such as
"param 'url' is required"), and both models give the JSON Schema the catalogue serves to the visual
designer. Field descriptions are the attribute docstrings; field names are snake_case in Python and
camelCase in workflows (`timeout_seconds` is `timeoutSeconds`).

    class GreetParams(Params):
        name: str
        \"\"\"Who to greet.\"\"\"

    class GreetOutputs(Params):
        greeting: str
        \"\"\"The greeting.\"\"\"

    @activity("acme.greet", category="Examples", params=GreetParams, outputs=GreetOutputs)
    def greet(ctx: ActivityContext, params: GreetParams) -> dict[str, Any]:
        \"\"\"Say hello.\"\"\"
        return {"greeting": f"hello {params.name}"}
"""

from __future__ import annotations

import ast
import functools
import inspect
import itertools
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.errors import ActivityError

__all__ = ["ActivitySpec", "DeclaredActivity", "Params", "activity", "either", "minimal_spec"]

ANY_OBJECT: dict[str, Any] = {"type": "object"}
"""The schema of an activity that declares nothing (a plugin's bare callable)."""


class Params(BaseModel):
    """Base of params and outputs models: strict JSON types, camelCase names, unknown keys ignored.

    Strict means no coercion, as in JSON Schema: `"5"` is not an integer, `true` is not a number, an
    integer is a number. A null param counts as absent, unless the field is typed `Any`.
    """

    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        frozen=True,
        alias_generator=to_camel,
        defer_build=True,  # validators are built on first use: importing every activity stays cheap
    )


P = TypeVar("P", bound=Params)


def either(*phrases: str) -> WrapValidator:
    """A union field's one error message ("must be a string or a list") instead of one per member.

    Use as `Annotated[str | list[str], either("a string", "a list of strings")]`.
    """
    message = "must be " + " or ".join(phrases)

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("exekra", message) from None

    return WrapValidator(validate)


@dataclass(frozen=True)
class ActivitySpec:
    """What the catalogue says about one activity. `params`/`outputs` are JSON Schema objects."""

    name: str
    category: str
    description: str
    params: dict[str, Any]
    outputs: dict[str, Any]
    capability: str | None = None
    package: str | None = None
    version: str | None = None

    def provided_by(self, package: str | None, version: str | None) -> ActivitySpec:
        """The same spec naming the distribution that provides it."""
        return replace(self, package=package, version=version)

    def to_dict(self) -> dict[str, Any]:
        """The catalogue entry: `{name, category, description, params, outputs, capability, package, version}`."""
        return {
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "params": self.params,
            "outputs": self.outputs,
            "capability": self.capability,
            "package": self.package,
            "version": self.version,
        }


class DeclaredActivity(Generic[P]):
    """An activity with its spec: called with raw params, it validates them and runs the function."""

    def __init__(
        self,
        run: Callable[[ActivityContext, P], dict[str, Any]],
        model: type[P],
        *,
        name: str,
        category: str,
        outputs: type[Params] | None,
        capability: str | None,
    ) -> None:
        self.run = run
        self.model = model
        self.name = name
        self._category = category
        self._outputs = outputs
        self.capability = capability
        self.__doc__ = run.__doc__
        self._keeps_null = {
            field.alias or name for name, field in model.model_fields.items() if field.annotation is Any
        }

    def __call__(self, ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
        return self.run(ctx, self.parse(params))

    def parse(self, params: Mapping[str, Any]) -> P:
        """The params as the model, or an `ActivityError` listing every problem."""
        present = {key: value for key, value in params.items() if value is not None or key in self._keeps_null}
        try:
            return self.model.model_validate(present)
        except ValidationError as exc:
            raise ActivityError("; ".join(_problem(error) for error in exc.errors())) from None

    @functools.cached_property
    def spec(self) -> ActivitySpec:
        """The catalogue entry, built on first use (schema generation is too slow for every import)."""
        return ActivitySpec(
            name=self.name,
            category=self._category,
            description=inspect.getdoc(self.run) or "",
            params=json_schema(self.model),
            outputs=ANY_OBJECT if self._outputs is None else json_schema(self._outputs),
            capability=self.capability,
        )

    def __repr__(self) -> str:
        return f"<activity {self.name}>"


def activity(
    name: str,
    *,
    category: str,
    params: type[P],
    outputs: type[Params] | None = None,
    capability: str | None = None,
) -> Callable[[Callable[[ActivityContext, P], dict[str, Any]]], DeclaredActivity[P]]:
    """Declare an activity; its description is the function's docstring."""

    def declare(run: Callable[[ActivityContext, P], dict[str, Any]]) -> DeclaredActivity[P]:
        return DeclaredActivity(run, params, name=name, category=category, outputs=outputs, capability=capability)

    return declare


def minimal_spec(name: str, run: Callable[..., Any]) -> ActivitySpec:
    """The spec of a plugin activity that is a bare callable: any params, any outputs."""
    capability = getattr(run, "capability", None)
    return ActivitySpec(
        name=name,
        category=str(getattr(run, "category", None) or "Plugins"),
        description=inspect.getdoc(run) or "",
        params=ANY_OBJECT,
        outputs=ANY_OBJECT,
        capability=capability if isinstance(capability, str) else None,
    )


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema as a form builder wants it: fields described by their attribute docstrings,
    references inlined, no titles, no null variants (null means absent), no null defaults."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    _describe(schema, model)
    for nested in _nested_models(model):
        if nested.__name__ in definitions:
            _describe(definitions[nested.__name__], nested)
    cleaned: dict[str, Any] = _clean(schema, definitions)
    return cleaned


def _describe(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Give each property of `schema` its field's attribute docstring.

    Read from the source here, when a schema is asked for, rather than by pydantic when every model
    class is made (`use_attribute_docstrings` parses the module once per class: too slow at import).
    """
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if isinstance(klass, type) and issubclass(klass, BaseModel) and klass not in (BaseModel, Params):
            docs.update(_class_docs(klass.__module__).get(klass.__qualname__, {}))
    properties = schema.get("properties", {})
    for name, field in model.model_fields.items():
        target = properties.get(field.alias or name)
        if target is not None and name in docs:
            target.setdefault("description", docs[name])


def _nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model class used by `model`'s fields, at any depth."""
    found: set[type[BaseModel]] = set()
    pending = [field.annotation for field in model.model_fields.values()]
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.add(annotation)
                pending.extend(field.annotation for field in annotation.model_fields.values())
        else:
            pending.extend(typing.get_args(annotation))
    return found


@functools.cache
def _class_docs(module_name: str) -> dict[str, dict[str, str]]:
    """Attribute docstrings of every class in a module: qualified class name -> field -> text."""
    try:
        tree = ast.parse(inspect.getsource(sys.modules[module_name]))
    except (OSError, TypeError, KeyError):
        return {}
    found: dict[str, dict[str, str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for statement in body:
            if isinstance(statement, ast.ClassDef):
                name = f"{prefix}{statement.name}"
                found[name] = _field_docs(statement.body)
                visit(statement.body, f"{name}.")

    visit(tree.body, "")
    return found


def _field_docs(body: list[ast.stmt]) -> dict[str, str]:
    docs = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _clean(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "properties":
            result[key] = {name: _clean(sub, definitions) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
            result[key] = _clean(value, definitions)
        else:
            result[key] = value
    variants = [variant for variant in result.get("anyOf", []) if variant != {"type": "null"}]
    if "anyOf" in result and len(variants) != len(result["anyOf"]):
        del result["anyOf"]
        if len(variants) == 1:
            result = {**variants[0], **result}
        elif variants:
            result["anyOf"] = variants
    return result


_TYPE_PHRASES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "int_parsing": "an integer",  # text that is no number, where text is accepted (a credential's fields)
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
_BOUND_PHRASES = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
_BOUND_KEYS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


def _problem(error: ErrorDetails) -> str:
    """One validation error as Exekra says it: "param 'smtp.port' must be an integer"."""
    where = f"param '{_path(error['loc'])}'"
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return f"{where} is required"
    if kind in _TYPE_PHRASES:
        return f"{where} must be {_TYPE_PHRASES[kind]}"
    if kind == "literal_error":
        choices = str(context["expected"]).replace("'", "").replace(" or ", ", ")
        return f"{where} must be one of {choices}"
    if kind in _BOUND_PHRASES:
        return f"{where} must be {_BOUND_PHRASES[kind]} {_number(context[_BOUND_KEYS[kind]])}"
    if kind == "too_short":
        return f"{where} must not be empty" if context.get("min_length") == 1 else f"{where}: {error['msg']}"
    if kind == "exekra":
        return f"{where} {error['msg']}"
    if kind == "value_error":
        return f"{where} {error['msg'].removeprefix('Value error, ')}"
    return f"{where}: {error['msg']}"


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
