"""Concurrency keys (docs/queue.md): which templates a workflow may use, and the key value an execution gets."""

from __future__ import annotations

import pytest

from exekra.hub import concurrency
from exekra.hub.errors import ValidationFailed


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ inputs.customer }}", None),
        ("{{ inputs.region }}-{{ inputs.customer | lower }}", None),
        ("tenant-a", None),
        ("{{ inputs.customer", "invalid template"),
        ("{{ nodes.get.status }}", "may read only inputs, not nodes"),
        ("{{ credentials.db.password }}", "may read only inputs, not credentials"),
        ("{{ execution.id }}", "may read only inputs, not execution"),
    ],
)
def test_a_key_template_must_parse_and_read_only_the_inputs(template: str, problem: str | None) -> None:
    found = concurrency.key_template_problem(template)
    assert found == problem if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("template", "inputs", "key"),
    [
        (None, {"customer": "acme"}, ""),
        ("{{ inputs.customer }}", {"customer": "acme"}, "acme"),
        ("{{ inputs.customer }}", {"customer": None}, ""),
        ("{{ inputs.shard }}", {"shard": 3}, "3"),
        ("{{ inputs.region }}/{{ inputs.customer }}", {"region": "eu", "customer": "acme"}, "eu/acme"),
        ("fixed", {}, "fixed"),
    ],
)
def test_the_key_value_is_the_template_evaluated_on_the_inputs(
    template: str | None, inputs: dict[str, object], key: str
) -> None:
    assert concurrency.group_key(template, inputs) == key


@pytest.mark.parametrize(
    ("template", "inputs", "message"),
    [
        ("{{ inputs.customer }}", {}, "cannot evaluate"),
        ("{{ inputs.customer.name }}", {"customer": "acme"}, "cannot evaluate"),
        ("{{ inputs.n + 'x' }}", {"n": 1}, "cannot evaluate"),
        ("{{ inputs.customer }}", {"customer": "x" * 201}, "at most 200"),
    ],
)
def test_inputs_that_give_no_key_value_are_refused(template: str, inputs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        concurrency.group_key(template, inputs)


def test_the_waiting_reason_names_the_key_only_when_there_is_one() -> None:
    assert concurrency.limit_reason(3, 3, "") == "concurrency limit reached: 3 of 3 running"
    assert concurrency.limit_reason(1, 2, "acme") == "concurrency limit reached: 2 of 1 running for key 'acme'"
