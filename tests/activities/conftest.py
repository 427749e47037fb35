"""Fixtures for activity tests against real local servers: a web app for the browser, databases,
mail servers. Each server is started by the test session and stopped at its end."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exekra.workflow.activities import ActivityContext
from exekra.workflow.scope import ExecutionScope

CHROMIUM = Path(os.environ.get("EXEKRA_TEST_CHROMIUM", "/usr/bin/chromium"))
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium")


class Call:
    """Calls activities as the engine would: one context per call, sharing one execution scope."""

    def __init__(self, workdir: Path, scope: ExecutionScope | None = None) -> None:
        self.workdir = workdir
        self.scope = scope or ExecutionScope()
        self.lines: list[tuple[str, str]] = []

    def __call__(self, activity: Callable[[ActivityContext, dict[str, Any]], dict[str, Any]], **params: Any) -> Any:
        ctx = ActivityContext(node_id="step", workdir=self.workdir, emit=self.emit, scope=self.scope)
        return activity(ctx, params)

    def emit(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    @property
    def messages(self) -> list[str]:
        return [message for _, message in self.lines]


@pytest.fixture
def call(tmp_path: Path) -> Call:
    """Activity calls in a fresh workdir and execution scope (closed after the test)."""
    caller = Call(tmp_path)
    yield caller
    caller.scope.close(caller.emit)
