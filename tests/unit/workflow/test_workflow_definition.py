"""Definition validation, input resolution and the static credential scan."""

from __future__ import annotations

from typing import Any

import pytest

from exekra.workflow import DefinitionError, referenced_credentials, resolve_inputs, validate_definition
from exekra.workflow.definition import undeclared_inputs

SPEC_EXAMPLE: dict[str, Any] = {
    "inputs": {"url": {"type": "string", "required": True}, "retries": {"type": "integer", "default": 2}},
    "nodes": [
        {"id": "get", "activity": "http.request", "params": {"method": "GET", "url": "{{ inputs.url }}"}},
        {"id": "check", "activity": "control.if", "params": {"condition": "{{ nodes.get.status == 200 }}"}},
        {
            "id": "save",
            "activity": "file.write",
            "params": {"path": "out/page.html", "content": "{{ nodes.get.text }}"},
        },
        {"id": "fail", "activity": "control.fail", "params": {"message": "got {{ nodes.get.status }}"}},
    ],
    "edges": [
        {"from": "get", "to": "check"},
        {"from": "check", "to": "save", "when": "true"},
        {"from": "check", "to": "fail", "when": "false"},
    ],
    "outputs": {"status": "{{ nodes.get.status }}"},
}


def problems_of(data: object, **kwargs: Any) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(data, **kwargs)
    return caught.value.problems


def one_node(**fields: Any) -> dict[str, Any]:
    return {"nodes": [{"id": "a", "activity": "log.message", **fields}]}


def test_spec_example_is_valid_and_parsed_into_models() -> None:
    workflow = validate_definition(
        SPEC_EXAMPLE, known_activities={"http.request", "control.if", "file.write", "control.fail"}
    )

    assert [node.id for node in workflow.nodes] == ["get", "check", "save", "fail"]
    assert workflow.edges[1].source == "check" and workflow.edges[1].target == "save"
    assert workflow.inputs["retries"].default == 2 and workflow.inputs["retries"].has_default
    assert not workflow.inputs["url"].has_default
    assert workflow.start_node() == "get"


def test_node_options_are_parsed_with_defaults() -> None:
    workflow = validate_definition(one_node(timeoutSeconds=2.5, retries=3, continueOnError=True))
    node = workflow.nodes[0]

    assert (node.timeout_seconds, node.retries, node.retry_delay_seconds, node.continue_on_error) == (2.5, 3, 1.0, True)


@pytest.mark.parametrize("data", [None, [], "nodes", 3])
def test_definition_must_be_an_object(data: object) -> None:
    assert problems_of(data) == ["definition must be an object"]


@pytest.mark.parametrize("nodes", [None, [], {"a": {}}])
def test_nodes_must_be_a_non_empty_list(nodes: object) -> None:
    data = {} if nodes is None else {"nodes": nodes}
    assert problems_of(data) == ["nodes must be a non-empty list"]


def test_unknown_top_level_field_is_a_problem() -> None:
    assert problems_of({**one_node(), "nodez": []}) == ["definition: unknown field 'nodez'"]


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ("a", "node 1: must be an object"),
        ({"activity": "log.message"}, "node 1: missing id"),
        (
            {"id": "has space", "activity": "x"},
            "node 1: invalid id 'has space' (letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 64 characters)",
        ),
        (
            {"id": "9lives", "activity": "x"},
            "node 1: invalid id '9lives' (letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 64 characters)",
        ),
        (
            {"id": 7, "activity": "x"},
            "node 1: invalid id 7 (letters, digits, '_' and '-', starting with a letter or '_', at most 64 characters)",
        ),
        ({"id": "a"}, "node 'a': missing activity"),
        ({"id": "a", "activity": 5}, "node 'a': activity must be a non-empty string"),
        ({"id": "a", "activity": "x", "timeout": 5}, "node 'a': unknown field 'timeout'"),
        ({"id": "a", "activity": "x", "params": []}, "node 'a': params must be an object"),
        ({"id": "a", "activity": "x", "timeoutSeconds": 0}, "node 'a': timeoutSeconds must be a number greater than 0"),
        (
            {"id": "a", "activity": "x", "timeoutSeconds": "5"},
            "node 'a': timeoutSeconds must be a number greater than 0",
        ),
        ({"id": "a", "activity": "x", "retries": 11}, "node 'a': retries must be an integer from 0 to 10"),
        ({"id": "a", "activity": "x", "retries": True}, "node 'a': retries must be an integer from 0 to 10"),
        ({"id": "a", "activity": "x", "retryDelaySeconds": -1}, "node 'a': retryDelaySeconds must be a number >= 0"),
        ({"id": "a", "activity": "x", "continueOnError": "yes"}, "node 'a': continueOnError must be a boolean"),
        (
            {"id": "a", "activity": "x", "params": {"url": "{{ inputs.url }"}},
            "node 'a': params.url: invalid template: unexpected '}'",
        ),
        (
            {"id": "a", "activity": "x", "params": {"headers": [{"X": "{% if %}"}]}},
            "node 'a': params.headers[0].X: invalid template: Expected an expression, got 'end of statement block'",
        ),
    ],
)
def test_node_rules(node: object, problem: str) -> None:
    assert problems_of({"nodes": [node]}) == [problem]


def test_duplicate_node_id_is_a_problem() -> None:
    data = {"nodes": [{"id": "a", "activity": "x"}, {"id": "a", "activity": "x"}]}
    assert problems_of(data) == ["node 2: duplicate id 'a'"]


def test_unknown_activity_is_a_problem_only_when_activities_are_known() -> None:
    data = {"nodes": [{"id": "get", "activity": "htp.request"}]}

    assert problems_of(data, known_activities={"http.request"}) == ["node 'get': unknown activity 'htp.request'"]
    assert validate_definition(data).nodes[0].activity == "htp.request"


@pytest.mark.parametrize(
    ("edges", "problem"),
    [
        ({}, "edges must be a list"),
        (["a"], "edge 1: must be an object"),
        ([{"to": "b"}], "edge 1: missing 'from'"),
        ([{"from": "a", "to": 2}], "edge 1: 'to' must be a string"),
        ([{"from": "a", "to": "b"}, {"from": "b", "to": "x"}], "edge 2: node 'x' does not exist"),
        ([{"from": "a", "to": "b", "when": True}], "edge 1: when must be a string"),
        ([{"from": "a", "to": "b", "if": "x"}], "edge 1: unknown field 'if'"),
    ],
)
def test_edge_rules(edges: object, problem: str) -> None:
    data = {"nodes": [{"id": "a", "activity": "x"}, {"id": "b", "activity": "x"}], "edges": edges, "start": "a"}
    assert problems_of(data) == [problem]


def test_when_after_control_if_must_be_true_or_false() -> None:
    data = {
        "nodes": [{"id": "check", "activity": "control.if"}, {"id": "b", "activity": "x"}],
        "edges": [{"from": "check", "to": "b", "when": "yes"}],
    }
    assert problems_of(data) == ['edge 1: when must be "true" or "false" after control.if node \'check\'']


@pytest.mark.parametrize(
    ("edges", "problem"),
    [
        ([("a", "b"), ("b", "a")], "graph has a cycle: a -> b -> a"),
        ([("a", "a")], "graph has a cycle: a -> a"),
        ([("s", "a"), ("a", "b"), ("b", "c"), ("c", "a")], "graph has a cycle: a -> b -> c -> a"),
    ],
)
def test_graph_must_be_acyclic(edges: list[tuple[str, str]], problem: str) -> None:
    data = {
        "nodes": [{"id": node_id, "activity": "x"} for node_id in ("s", "a", "b", "c")],
        "edges": [{"from": source, "to": target} for source, target in edges],
        "start": "s",
    }
    assert problems_of(data) == [problem]


def test_more_than_one_start_node_needs_start() -> None:
    data = {"nodes": [{"id": "a", "activity": "x"}, {"id": "b", "activity": "x"}]}

    assert problems_of(data) == ['more than one start node: a, b (set "start")']
    assert validate_definition({**data, "start": "b"}).start_node() == "b"


@pytest.mark.parametrize(("start", "problem"), [("z", "start: node 'z' does not exist"), (1, "start must be a string")])
def test_start_must_name_a_node(start: object, problem: str) -> None:
    assert problems_of({**one_node(), "start": start}) == [problem]


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ([], "inputs must be an object"),
        ({"url": "string"}, "input 'url': must be an object"),
        (
            {"my url": {"type": "string"}},
            "input 'my url': invalid name (letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 64 characters)",
        ),
        ({"url": {}}, "input 'url': missing type"),
        ({"url": {"type": "text"}}, "input 'url': type must be one of string, integer, number, boolean, object, array"),
        ({"n": {"type": "integer", "default": "2"}}, "input 'n': default must be an integer"),
        ({"n": {"type": "integer", "required": "yes"}}, "input 'n': required must be a boolean"),
        ({"n": {"type": "integer", "description": 1}}, "input 'n': description must be a string"),
        ({"n": {"type": "integer", "min": 1}}, "input 'n': unknown field 'min'"),
    ],
)
def test_input_spec_rules(inputs: object, problem: str) -> None:
    assert problems_of({**one_node(), "inputs": inputs}) == [problem]


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        ([], "outputs must be an object"),
        ({"x": "{{ 1 + }}"}, "outputs.x: invalid template: unexpected 'end of template'"),
    ],
)
def test_output_rules(outputs: object, problem: str) -> None:
    assert problems_of({**one_node(), "outputs": outputs}) == [problem]


def test_foreach_sub_nodes_are_validated_recursively() -> None:
    data = {
        "nodes": [
            {"id": "a", "activity": "x"},
            {
                "id": "each",
                "activity": "control.foreach",
                "params": {"nodes": [{"id": "a", "activity": "x"}, {"id": "inner"}, "bad"]},
            },
        ],
        "edges": [{"from": "a", "to": "each"}],
    }
    assert problems_of(data) == [
        "node 'each': params.items is required",
        "node 'each': sub-node 1: duplicate id 'a'",
        "node 'inner': missing activity",
        "node 'each': sub-node 3: must be an object",
    ]


def test_foreach_needs_a_non_empty_list_of_nodes() -> None:
    data = {"nodes": [{"id": "each", "activity": "control.foreach", "params": {"items": [1], "nodes": []}}]}
    assert problems_of(data) == ["node 'each': params.nodes must be a non-empty list"]


def test_foreach_sub_nodes_keep_their_templates_for_run_time() -> None:
    data = {
        "nodes": [
            {
                "id": "each",
                "activity": "control.foreach",
                "params": {
                    "items": [1],
                    "nodes": [{"id": "say", "activity": "log.message", "params": {"message": "{{ item"}}],
                },
            }
        ]
    }
    assert problems_of(data) == [
        "node 'say': params.message: invalid template: unexpected end of template, expected 'end of print statement'."
    ]


def test_every_problem_is_collected_and_str_joins_them() -> None:
    data = {
        "nodes": [{"id": "a", "activity": "x", "retries": -1}, {"id": "b"}, {"id": "b", "activity": "x"}],
        "edges": [{"from": "a", "to": "c"}, {"from": "b", "to": "a"}, {"from": "a", "to": "b"}],
        "outputs": [],
    }
    with pytest.raises(DefinitionError) as caught:
        validate_definition(data, known_activities={"y"})

    assert caught.value.problems == [
        "node 'a': unknown activity 'x'",
        "node 'a': retries must be an integer from 0 to 10",
        "node 'b': missing activity",
        "node 3: duplicate id 'b'",
        "node 3: unknown activity 'x'",
        "edge 1: node 'c' does not exist",
        "graph has a cycle: a -> b -> a",
        "outputs must be an object",
    ]
    assert str(caught.value) == "; ".join(caught.value.problems)


def test_execution_order_is_topological_with_ties_in_definition_order() -> None:
    workflow = validate_definition(
        {
            "nodes": [{"id": node_id, "activity": "x"} for node_id in ("d", "c", "b", "a")],
            "edges": [
                {"from": "a", "to": "b"},
                {"from": "b", "to": "c"},
                {"from": "a", "to": "d"},
                {"from": "c", "to": "d"},
            ],
        }
    )
    assert [node.id for node in workflow.execution_order()] == ["a", "b", "c", "d"]


def test_resolve_inputs_applies_defaults_and_passes_undeclared_inputs_through() -> None:
    definition = {
        **one_node(),
        "inputs": {
            "url": {"type": "string", "required": True},
            "retries": {"type": "integer", "default": 2},
            "tags": {"type": "array", "default": ["a"]},
            "note": {"type": "string"},
        },
    }
    resolved = resolve_inputs(definition, {"url": "http://x", "retries": None, "payload": {"k": 1}})

    assert resolved == {"url": "http://x", "retries": 2, "tags": ["a"], "note": None, "payload": {"k": 1}}


def test_resolve_inputs_reports_every_missing_or_mistyped_input() -> None:
    definition = validate_definition(
        {
            **one_node(),
            "inputs": {
                "url": {"type": "string", "required": True},
                "count": {"type": "integer"},
                "ratio": {"type": "number"},
                "flag": {"type": "boolean"},
                "options": {"type": "object"},
                "items": {"type": "array"},
            },
        }
    )
    with pytest.raises(DefinitionError) as caught:
        resolve_inputs(definition, {"count": True, "ratio": "1", "flag": 1, "options": [], "items": {}})

    assert caught.value.problems == [
        "input 'url' is required",
        "input 'count' must be an integer",
        "input 'ratio' must be a number",
        "input 'flag' must be a boolean",
        "input 'options' must be an object",
        "input 'items' must be an array",
    ]


def test_resolve_inputs_accepts_integers_for_numbers() -> None:
    definition = {**one_node(), "inputs": {"ratio": {"type": "number"}}}
    assert resolve_inputs(definition, {"ratio": 3}) == {"ratio": 3}


def test_resolve_inputs_rejects_a_non_object() -> None:
    with pytest.raises(DefinitionError) as caught:
        resolve_inputs(one_node(), ["x"])  # type: ignore[arg-type]
    assert caught.value.problems == ["inputs must be an object"]


def test_referenced_credentials_finds_literal_names_everywhere() -> None:
    definition = {
        "nodes": [
            {
                "id": "a",
                "activity": "http.request",
                "params": {"headers": {"Authorization": "Bearer {{ credentials.api.token }}"}},
            },
            {
                "id": "each",
                "activity": "control.foreach",
                "params": {
                    "items": "{{ inputs.hosts }}",
                    "nodes": [
                        {"id": "b", "activity": "shell.run", "params": {"command": "{{ credentials['ssh-key'].key }}"}}
                    ],
                },
            },
        ],
        "edges": [{"from": "a", "to": "each"}],
        "outputs": {"user": "{{ credentials.db.user }}", "dynamic": "{{ credentials[inputs.name].x }}"},
    }

    assert referenced_credentials(definition) == {"api", "ssh-key", "db"}
    assert referenced_credentials(validate_definition(definition)) == {"api", "ssh-key", "db"}


def test_referenced_credentials_ignores_text_outside_templates() -> None:
    assert referenced_credentials(one_node(params={"message": "credentials.api is not a template"})) == set()


def located(data: object, **kwargs: Any) -> list[dict[str, Any]]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(data, **kwargs)
    return [problem.to_api() for problem in caught.value.located]


def test_each_problem_names_its_node_edge_and_parameter() -> None:
    data = {
        "nodes": [
            {"id": "get", "activity": "http.request", "params": {"url": "{{ inputs.url", "headers": {"A": "{{"}}},
            {"id": "check", "activity": "control.if", "timeoutSeconds": 0},
            {"id": 7, "activity": "log.message"},
        ],
        "edges": [{"from": "get", "to": "check"}, {"from": "check", "to": "nowhere", "when": "yes"}],
    }
    problems = located(data, known_activities={"http.request", "control.if"})

    assert [{k: v for k, v in p.items() if k != "message"} for p in problems] == [
        {"node": "get", "param": "url"},
        {"node": "get", "param": "headers.A"},
        {"node": "check"},
        {},  # node 3 has no usable id, so only its message says where it is
        {},
        {"edge": 2},
        {"edge": 2},
    ]
    assert problems[0]["message"].startswith("node 'get': params.url: invalid template")
    assert problems[2]["message"] == "node 'check': timeoutSeconds must be a number greater than 0"
    assert problems[5]["message"] == "edge 2: node 'nowhere' does not exist"


def test_a_cycle_names_the_edge_that_closes_it() -> None:
    data = {
        "nodes": [{"id": n, "activity": "x"} for n in ("a", "b", "c")],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b"}],
    }
    assert located(data) == [{"message": "graph has a cycle: b -> c -> b", "node": "c", "edge": 3}]


def test_a_foreach_sub_node_problem_points_at_the_top_level_node_and_its_path() -> None:
    data = {
        "nodes": [
            {
                "id": "each",
                "activity": "control.foreach",
                "params": {
                    "items": [1],
                    "nodes": [{"id": "say", "activity": "log.message", "params": {"message": "{{ item"}}, {"id": "x"}],
                },
            }
        ]
    }
    problems = located(data)
    assert [(p["node"], p["param"]) for p in problems] == [
        ("each", "nodes[0].params.message"),
        ("each", "nodes[1]"),
    ]
    assert problems[1]["message"] == "node 'x': missing activity"


def test_the_ui_object_is_accepted_and_ignored_by_the_engine_model() -> None:
    ui = {"positions": {"a": {"x": 10, "y": 20}}, "zoom": 1.5}
    workflow = validate_definition({**one_node(), "ui": ui})
    assert [node.id for node in workflow.nodes] == ["a"]
    assert problems_of({**one_node(), "ui": []}) == ["ui must be an object"]


# --- strictInputs (issue 13, item 7) -------------------------------------------------------------------


def test_strict_inputs_is_accepted_as_a_boolean_and_defaults_to_off() -> None:
    assert validate_definition({**one_node(), "strictInputs": True}).strict_inputs is True
    assert validate_definition(one_node()).strict_inputs is False
    assert problems_of({**one_node(), "strictInputs": "yes"}) == ["strictInputs must be a boolean"]


def test_undeclared_inputs_are_named_in_the_order_given() -> None:
    definition = {**one_node(), "inputs": {"label": {"type": "string"}, "count": {"type": "integer"}}}
    assert undeclared_inputs(definition, {"lable": "x", "count": 1, "extra": True}) == ["lable", "extra"]
    assert undeclared_inputs(definition, {"label": "x"}) == []
    assert undeclared_inputs(one_node(), {"payload": {}}) == ["payload"]


def test_strict_inputs_refuses_each_undeclared_input() -> None:
    definition = {**one_node(), "inputs": {"label": {"type": "string"}}, "strictInputs": True}
    with pytest.raises(DefinitionError) as refused:
        resolve_inputs(definition, {"lable": "x", "extra": 1})
    assert refused.value.problems == [
        "input 'lable' is not declared (strictInputs)",
        "input 'extra' is not declared (strictInputs)",
    ]
    assert resolve_inputs(definition, {"label": "x"}) == {"label": "x"}
    assert resolve_inputs({**definition, "strictInputs": False}, {"lable": "x"}) == {"label": None, "lable": "x"}


# --- parallel branches (issue 18) ----------------------------------------------------------------------


def test_max_parallel_is_an_integer_from_1_to_64_defaulting_to_4() -> None:
    assert validate_definition(one_node()).max_parallel == 4
    assert validate_definition({**one_node(), "maxParallel": 1}).max_parallel == 1
    assert validate_definition({**one_node(), "maxParallel": 64}).max_parallel == 64
    for wrong in (0, 65, -1, 2.5, "4", True, None):
        assert problems_of({**one_node(), "maxParallel": wrong}) == ["maxParallel must be an integer from 1 to 64"]


def loop(**params: Any) -> dict[str, Any]:
    body = [{"id": "say", "activity": "log.message", "params": {"message": "{{ item }}"}}]
    return {"nodes": [{"id": "each", "activity": "control.foreach", "params": {"items": [1], "nodes": body, **params}}]}


def test_foreach_parallel_is_an_integer_from_1_to_64_or_a_template() -> None:
    for valid in (1, 8, 64, "{{ inputs.width }}"):
        validate_definition(loop(parallel=valid))
    for wrong in (0, 65, 1.5, "2", False, None):
        assert problems_of(loop(parallel=wrong)) == ["node 'each': params.parallel must be an integer from 1 to 64"]
    with pytest.raises(DefinitionError) as caught:
        validate_definition(loop(parallel=0))
    assert caught.value.located[0].to_api() == {
        "message": "node 'each': params.parallel must be an integer from 1 to 64",
        "node": "each",
        "param": "parallel",
    }


def test_control_join_mode_is_all_or_any_and_never_a_template() -> None:
    def join(**params: Any) -> dict[str, Any]:
        return {"nodes": [{"id": "j", "activity": "control.join", "params": params}]}

    for valid in ({}, {"mode": "all"}, {"mode": "any"}):
        validate_definition(join(**valid), known_activities={"control.join"})
    for wrong in ("some", "ANY", "{{ inputs.mode }}", 1, None):
        assert problems_of(join(mode=wrong)) == ['node \'j\': params.mode must be "all" or "any"']
