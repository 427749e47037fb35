"""The OpenAPI document describes every answer, errors included, so that generated clients get real types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exekra.config import Settings
from exekra.hub.app import create_app
from exekra.hub.errors import ErrorBody, error_response

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(database_url="postgresql://openapi@127.0.0.1:9/none"))
    return app.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{method.upper()} {path}", op) for path, item in document["paths"].items() for method, op in item.items()]


def untyped(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """True for a schema that tells a client nothing: `{}`, or an object of unnamed, untyped properties."""
    if "$ref" in schema:
        named = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return not named.get("properties")
    return True


def test_every_successful_answer_has_a_typed_body_or_none(document: dict[str, Any]) -> None:
    loose = set()
    for name, op in operations(document):
        for status, answer in op["responses"].items():
            if not status.startswith("2"):
                continue
            content = answer.get("content", {})
            if status == "204":
                assert not content, f"{name}: 204 has a body"
                continue
            assert content, f"{name}: {status} declares no media type"
            for media_type, body in content.items():
                if media_type == "application/json":
                    if untyped(document, body.get("schema", {})):
                        loose.add(f"{name} {status}")
                else:
                    assert body.get("schema"), f"{name}: {status} {media_type} has no schema"
    assert not loose, "untyped answers:\n" + "\n".join(sorted(loose))


def test_every_operation_names_the_error_body_of_its_4xx_and_5xx_answers(document: dict[str, Any]) -> None:
    for name, op in operations(document):
        errors = {status: answer for status, answer in op["responses"].items() if status[0] in "45"}
        assert {"4XX", "5XX"} <= set(errors), f"{name}: {sorted(errors)}"
        for status, answer in errors.items():
            assert answer["content"] == {"application/json": {"schema": ERROR_BODY}}, f"{name} {status}"


def test_the_log_stream_is_declared_as_server_sent_events(document: dict[str, Any]) -> None:
    answer = document["paths"]["/api/executions/{execution_id}/logs/stream"]["get"]["responses"]["200"]
    assert list(answer["content"]) == ["text/event-stream"]


def test_the_error_body_model_is_the_shape_the_hub_renders() -> None:
    body = orjson.loads(error_response(409, "conflict", "stale attempt", details={"attempt": 2}).body)
    assert ErrorBody.model_validate(body, extra="forbid").error.code == "conflict"
