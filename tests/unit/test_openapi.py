"""The OpenAPI document describes every answer, errors included, so that generated clients get real types."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exekra.config import Settings
from exekra.hub.app import create_app
from exekra.hub.errors import ErrorBody, error_response

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
# Answers still documented as a bare object; the set only shrinks.
STILL_LOOSE = {
    "DELETE /api/auth/tokens/{token_id} 200",
    "DELETE /api/credentials/{credential_id} 200",
    "DELETE /api/runners/{runner_id} 200",
    "DELETE /api/triggers/{trigger_id} 200",
    "DELETE /api/users/{user_id} 200",
    "DELETE /api/workflows/{workflow_id} 200",
    "GET /api/activities 200",
    "GET /api/audit 200",
    "GET /api/auth/me 200",
    "GET /api/auth/tokens 200",
    "GET /api/credentials 200",
    "GET /api/credentials/{credential_id} 200",
    "GET /api/executions 200",
    "GET /api/executions/{execution_id} 200",
    "GET /api/executions/{execution_id}/logs 200",
    "GET /api/health 200",
    "GET /api/runners 200",
    "GET /api/runners/{runner_id} 200",
    "GET /api/runners/{runner_id}/metrics 200",
    "GET /api/stats 200",
    "GET /api/triggers 200",
    "GET /api/triggers/{trigger_id} 200",
    "GET /api/users 200",
    "GET /api/workflows 200",
    "GET /api/workflows/{workflow_id} 200",
    "GET /api/workflows/{workflow_id}/export 200",
    "GET /api/workflows/{workflow_id}/versions 200",
    "GET /api/workflows/{workflow_id}/versions/{number} 200",
    "PATCH /api/credentials/{credential_id} 200",
    "PATCH /api/runners/{runner_id} 200",
    "PATCH /api/triggers/{trigger_id} 200",
    "PATCH /api/users/{user_id} 200",
    "PATCH /api/workflows/{workflow_id} 200",
    "POST /api/auth/bootstrap 201",
    "POST /api/auth/login 200",
    "POST /api/auth/logout 200",
    "POST /api/auth/password 200",
    "POST /api/auth/register 201",
    "POST /api/auth/tokens 201",
    "POST /api/credentials 201",
    "POST /api/executions/{execution_id}/stop 200",
    "POST /api/runners 201",
    "POST /api/runners/{runner_id}/regenerate-secret 200",
    "POST /api/triggers 201",
    "POST /api/triggers/{trigger_id}/rotate-token 200",
    "POST /api/workflows 201",
    "POST /api/workflows/import 201",
    "POST /api/workflows/{workflow_id}/publish 200",
    "POST /api/workflows/{workflow_id}/versions 201",
}


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
    assert loose == STILL_LOOSE, "untyped answers:\n" + "\n".join(sorted(loose ^ STILL_LOOSE))


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
