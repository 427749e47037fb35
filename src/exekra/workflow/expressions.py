"""Sandboxed Jinja2 templates for node params and workflow outputs.

A string that is exactly one `{{ expr }}` (surrounding whitespace aside) evaluates to the expression's
native value (int, bool, dict, ...); any other string containing template syntax renders to a string;
strings without template syntax are returned unchanged. Values produced at run time are never
rendered again, so data from outside (inputs, HTTP bodies) cannot inject expressions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from exekra.workflow.errors import ExpressionError

# `{{ expr }}` alone; `{{-`/`-}}` (whitespace control) mean the text around it matters, so not native.
_SINGLE_EXPRESSION = re.compile(r"\s*\{\{(?![-+])(?P<expr>(?:(?!\}\}).)*?)(?<![-+])\}\}\s*", re.DOTALL)
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, except that a mapping's keys win over its methods.

    Jinja prefers attributes, so `nodes.get` or `vars.items` would otherwise return dict methods
    instead of the node called `get` or the variable called `items`.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


_ENVIRONMENT = _Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def is_template(value: str) -> bool:
    """True when the string contains template syntax and so is evaluated rather than used as is."""
    return any(marker in value for marker in _TEMPLATE_MARKERS)


@lru_cache(maxsize=2048)
def _compile(source: str) -> Callable[[Mapping[str, Any]], Any]:
    single = _SINGLE_EXPRESSION.fullmatch(source)
    if single:
        return _ENVIRONMENT.compile_expression(single["expr"], undefined_to_none=False)
    return _ENVIRONMENT.from_string(source).render


def syntax_problem(source: str) -> str | None:
    """The syntax error of a template string, or None when it compiles (or is not a template)."""
    if not is_template(source):
        return None
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        return f"invalid template: {exc.message}"
    return None


def variables(source: str) -> set[str]:
    """The top-level names a template reads (`inputs`, `nodes`, ...); call it on a template that parses."""
    if not is_template(source):
        return set()
    return meta.find_undeclared_variables(_ENVIRONMENT.parse(source))


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one string: the native value of a lone `{{ expr }}`, else the rendered string.

    Raises `jinja2.TemplateError` (undefined names, sandbox violations, syntax errors).
    """
    if not is_template(source):
        return source
    value = _compile(source)(context)
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises its precise error (missing key, unsafe attribute) here
    return value


def render(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """Evaluate every string inside `value`, walking dicts and lists, and return the result.

    `where` names the place for error messages, e.g. `node 'get': params`; nested keys are appended
    (`node 'get': params.headers.Authorization`). Raises `ExpressionError`.
    """
    if isinstance(value, str):
        try:
            return evaluate(value, context)
        except TemplateError as exc:
            raise ExpressionError(f"{where}: cannot evaluate {value!r}: {exc}") from None
    if isinstance(value, dict):
        return {key: render(item, context, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def credential_names(source: str) -> set[str]:
    """Names of credentials a template reads as `credentials.<name>` or `credentials['<name>']`."""
    if not is_template(source):
        return set()
    try:
        tree = _ENVIRONMENT.parse(source)
    except TemplateSyntaxError:
        return set()
    return set(_credential_lookups(tree))


def _credential_lookups(tree: nodes.Template) -> Iterator[str]:
    for attribute in tree.find_all(nodes.Getattr):
        if _is_credentials(attribute.node):
            yield attribute.attr
    for item in tree.find_all(nodes.Getitem):
        if _is_credentials(item.node) and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            yield item.arg.value


def _is_credentials(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "credentials"
