"""Every answer the in-process hub gives a test has exactly the shape its OpenAPI document names.

The hot-path routes answer plain dicts and only name their model for the document
(`exekra.hub.responses.documented`), so that no answer pays for validation; this check, on every call the API
tests make, is what keeps those dicts and the models one shape: a field missing, unknown or of another type
fails the test that saw it. Error answers are held to `ErrorBody` the same way.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel


class AnswerShapes:
    """An httpx response hook that validates JSON answers against the model the OpenAPI document names."""

    def __init__(self, app: FastAPI) -> None:
        models = {model.__name__: model for model in _hub_models(BaseModel)}
        self._operations: list[tuple[str, re.Pattern[str], dict[str, type[BaseModel]]]] = []
        # Literal paths before templated ones (`/api/workflows/import` before `/api/workflows/{workflow_id}`).
        for path, item in sorted(app.openapi()["paths"].items(), key=lambda entry: entry[0].count("{")):
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
            for method, operation in item.items():
                self._operations.append((method.upper(), pattern, _named_models(operation, models)))

    def model_for(self, method: str, path: str, status: int) -> type[BaseModel] | None:
        """The model named for this answer (None: not an API route, or an answer without a JSON body)."""
        for operation_method, pattern, answers in self._operations:
            if operation_method == method and pattern.match(path):
                return answers.get(str(status)) or answers.get(f"{status // 100}XX")
        return None

    async def __call__(self, response: httpx.Response) -> None:
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        model = self.model_for(response.request.method, response.request.url.path, response.status_code)
        if model is None:
            return
        await response.aread()
        model.model_validate(response.json(), extra="forbid")


def _named_models(operation: dict[str, Any], models: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    named = {}
    for status, answer in operation["responses"].items():
        ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
        if ref:
            named[status] = models[ref.rsplit("/", 1)[-1]]
    return named


def _hub_models(base: type[BaseModel]) -> list[type[BaseModel]]:
    found = []
    for model in base.__subclasses__():
        if model.__module__.startswith("exekra.hub"):
            found.append(model)
        found.extend(_hub_models(model))
    return found
