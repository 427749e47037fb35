"""Sandboxed templates: native values, string rendering, strict names and the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from exekra.workflow.errors import ExpressionError
from exekra.workflow.expressions import credential_names, render, syntax_problem

CONTEXT: dict[str, Any] = {
    "inputs": {"count": 3, "name": "Ada", "flag": True},
    "nodes": {"get": {"status": 200, "json": {"items": [1, 2]}}, "items": {"value": "node called items"}},
    "vars": {"items": ["v"], "total": 2.5},
    "credentials": {"api": {"token": "s3cret"}},
    "execution": {"id": "exec-1", "attempt": 2},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ inputs.count }}", 3),
        ("{{ inputs.flag }}", True),
        ("  {{ nodes.get.status == 200 }}\n", True),
        ("{{ nodes.get.json }}", {"items": [1, 2]}),
        ("{{ nodes.get.json['items'] | length }}", 2),
        ("{{ vars.total * 2 }}", 5.0),
        ("{{ none }}", None),
        ("{{ execution.attempt }}", 2),
    ],
)
def test_a_lone_expression_evaluates_to_its_native_value(source: str, expected: object) -> None:
    assert render(source, CONTEXT, "node 'a': params.x") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("count={{ inputs.count }}", "count=3"),
        ("{{ inputs.name }} has {{ inputs.count }}", "Ada has 3"),
        ("{% if inputs.flag %}yes{% else %}no{% endif %}", "yes"),
        ("{{- inputs.count -}}", "3"),
        ("line\n", "line\n"),
        ("{ not: a template }", "{ not: a template }"),
    ],
)
def test_any_other_string_renders_to_a_string(source: str, expected: str) -> None:
    assert render(source, CONTEXT, "node 'a': params.x") == expected


def test_render_walks_dicts_and_lists() -> None:
    params = {"url": "{{ inputs.name }}", "headers": {"n": "{{ inputs.count }}"}, "list": ["{{ inputs.flag }}", 4]}

    assert render(params, CONTEXT, "node 'a': params") == {"url": "Ada", "headers": {"n": 3}, "list": [True, 4]}


def test_mapping_keys_win_over_dict_methods() -> None:
    assert render("{{ nodes.items.value }}", CONTEXT, "x") == "node called items"
    assert render("{{ vars.items }}", CONTEXT, "x") == ["v"]
    assert render("{% for k, v in inputs.items() %}{{ k }}{% endfor %}", CONTEXT, "x") == "countnameflag"


def test_an_undefined_name_raises_naming_the_place_and_the_expression() -> None:
    with pytest.raises(ExpressionError) as caught:
        render({"headers": {"X": "{{ inputs.missing }}"}}, CONTEXT, "node 'get': params")

    assert str(caught.value) == (
        "node 'get': params.headers.X: cannot evaluate '{{ inputs.missing }}': 'dict object' has no attribute 'missing'"
    )


def test_undefined_names_inside_text_raise_too() -> None:
    with pytest.raises(ExpressionError, match=r"node 'a': params.x\[1\]: cannot evaluate 'id={{ nodes.skipped.id }}'"):
        render(["ok", "id={{ nodes.skipped.id }}"], CONTEXT, "node 'a': params.x")


def test_is_defined_tests_a_skipped_node() -> None:
    assert render("{{ nodes.skipped is defined }}", CONTEXT, "x") is False


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "x{{ inputs.__class__ }}",
        "{{ vars.items.append(1) }}",
        "{{ inputs.update(name='Eve') }}",
    ],
)
def test_the_sandbox_blocks_internals_and_mutation(source: str) -> None:
    with pytest.raises(ExpressionError):
        render(source, CONTEXT, "node 'a': params.x")
    assert CONTEXT["inputs"]["name"] == "Ada" and CONTEXT["vars"]["items"] == ["v"]


def test_rendered_values_are_not_rendered_again() -> None:
    context = {**CONTEXT, "inputs": {"text": "{{ credentials.api.token }}"}}
    assert render("{{ inputs.text }}", context, "x") == "{{ credentials.api.token }}"


def test_syntax_problem() -> None:
    assert syntax_problem("{{ inputs.url }}") is None
    assert syntax_problem("plain {text}") is None
    assert (
        syntax_problem("{% for x in y %}") == "invalid template: Unexpected end of template. Jinja was looking for "
        "the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'."
    )


def test_credential_names_reads_attribute_and_literal_item_access() -> None:
    assert credential_names("{{ credentials.api.token }}:{{ credentials['db-main'].user }}") == {"api", "db-main"}
    assert credential_names("{{ credentials[inputs.which].token }}") == set()
    assert credential_names("{{ broken") == set()
