"""The SDK reads `error.details.problems` as located problems, and the CLI prints each message."""

from __future__ import annotations

import argparse

from exekra.client import Problem, ValidationFailed
from exekra.client.errors import error_for
from exekra.clientcli.common import explain

REFUSAL = {
    "error": {
        "code": "validation_failed",
        "message": "Invalid definition: node 'get': params.url: invalid template",
        "details": {
            "problems": [
                {"message": "node 'get': params.url: invalid template", "node": "get", "param": "url"},
                {"message": "edge 2: node 'x' does not exist", "edge": 2},
            ]
        },
    }
}


def test_a_422_carries_each_problem_with_where_it_is() -> None:
    error = error_for(422, REFUSAL, {})
    assert isinstance(error, ValidationFailed)
    assert error.problems == [
        Problem("node 'get': params.url: invalid template", node="get", param="url"),
        Problem("edge 2: node 'x' does not exist", edge=2),
    ]


def test_plain_text_problems_are_read_as_messages() -> None:
    body = {"error": {"code": "validation_failed", "message": "inputs: x", "details": {"problems": ["input 'x'"]}}}
    error = error_for(422, body, {})
    assert isinstance(error, ValidationFailed) and error.problems == [Problem("input 'x'")]
    bare = error_for(422, {"error": {"code": "validation_failed", "message": "m"}}, {})
    assert isinstance(bare, ValidationFailed) and bare.problems == []


def test_the_cli_lists_every_problem_message() -> None:
    error = error_for(422, REFUSAL, {})
    text = explain(error, argparse.Namespace(hub_url="http://127.0.0.1:1"))
    assert text.splitlines() == [
        "Invalid definition (2 problems):",
        "  - node 'get': params.url: invalid template",
        "  - edge 2: node 'x' does not exist",
    ]
