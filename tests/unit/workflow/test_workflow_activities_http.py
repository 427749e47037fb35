"""`http.request` against a local HTTP server."""

from __future__ import annotations

import pytest
from workflow_support import ActivityCall

from exekra.workflow.activities import http
from exekra.workflow.errors import ActivityError


def test_get_json_with_query_and_headers(call: ActivityCall, base_url: str) -> None:
    outputs = http.request(
        call.ctx, {"url": f"{base_url}/echo", "params": {"q": "a b", "n": 1}, "headers": {"X-Token": "t", "X-N": 2}}
    )

    assert outputs["status"] == 200
    assert outputs["headers"]["content-type"] == "application/json"
    assert outputs["json"]["method"] == "GET"
    assert outputs["json"]["query"] == {"q": ["a b"], "n": ["1"]}
    assert outputs["json"]["headers"]["x-token"] == "t" and outputs["json"]["headers"]["x-n"] == "2"
    assert outputs["text"].startswith("{")


def test_post_json_body(call: ActivityCall, base_url: str) -> None:
    outputs = http.request(call.ctx, {"method": "post", "url": f"{base_url}/echo", "json": {"a": [1, 2]}})

    assert outputs["json"]["method"] == "POST"
    assert outputs["json"]["body"] == '{"a":[1,2]}'
    assert outputs["json"]["headers"]["content-type"] == "application/json"


def test_put_text_body(call: ActivityCall, base_url: str) -> None:
    outputs = http.request(call.ctx, {"method": "PUT", "url": f"{base_url}/echo", "body": "plain text"})
    assert (outputs["json"]["method"], outputs["json"]["body"]) == ("PUT", "plain text")


def test_non_json_body_gives_null_json_and_redirects_are_followed(call: ActivityCall, base_url: str) -> None:
    outputs = http.request(call.ctx, {"url": f"{base_url}/redirect"})

    assert (outputs["status"], outputs["text"], outputs["json"]) == (200, "<p>hello</p>", None)
    assert outputs["headers"]["x-page"] == "1"


def test_an_error_status_is_a_result_not_a_failure(call: ActivityCall, base_url: str) -> None:
    outputs = http.request(call.ctx, {"url": f"{base_url}/missing"})
    assert (outputs["status"], outputs["json"]) == (404, {"error": "not found"})


def test_timeout_fails_the_request(call: ActivityCall, base_url: str) -> None:
    with pytest.raises(ActivityError, match=rf"^GET {base_url}/slow: ReadTimeout"):
        http.request(call.ctx, {"url": f"{base_url}/slow", "timeoutSeconds": 0.2})


def test_connection_refused_fails_the_request(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^GET http://127.0.0.1:1/: ConnectError"):
        http.request(call.ctx, {"url": "http://127.0.0.1:1/"})


def test_json_and_body_together_are_refused(call: ActivityCall, base_url: str) -> None:
    with pytest.raises(ActivityError, match=r"^give either param 'json' or param 'body', not both$"):
        http.request(call.ctx, {"url": f"{base_url}/echo", "json": {}, "body": "x"})
