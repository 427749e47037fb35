"""The check that holds every answer of the in-process hub to the model its OpenAPI document names."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from exekra.hub.errors import ErrorBody
from exekra.hub.executions.schemas import CreatedExecutionAnswer
from exekra.hub.runners.schemas import HeartbeatAnswer

from .contract import AnswerShapes


def test_each_answer_is_matched_to_its_documented_model(answer_shapes: AnswerShapes) -> None:
    assert answer_shapes.model_for("POST", "/api/runner/heartbeat", 200) is HeartbeatAnswer
    assert answer_shapes.model_for("POST", "/api/executions", 201) is CreatedExecutionAnswer
    assert answer_shapes.model_for("POST", "/api/executions", 200) is CreatedExecutionAnswer
    assert answer_shapes.model_for("GET", "/api/executions/abc", 404) is ErrorBody
    assert answer_shapes.model_for("GET", "/api/runner/poll", 204) is None
    assert answer_shapes.model_for("GET", "/executions", 200) is None  # a dashboard page


async def test_an_answer_with_a_field_the_model_does_not_name_fails(answer_shapes: AnswerShapes) -> None:
    request = httpx.Request("POST", "http://testserver/api/runner/heartbeat")
    good = {"status": "ONLINE", "stopExecutionIds": [], "catalogueWanted": False}
    await answer_shapes(httpx.Response(200, json=good, request=request))
    with pytest.raises(ValidationError, match="extra"):
        await answer_shapes(httpx.Response(200, json={**good, "undocumented": 1}, request=request))
    with pytest.raises(ValidationError, match="stopExecutionIds"):
        await answer_shapes(httpx.Response(200, json={"status": "ONLINE"}, request=request))
