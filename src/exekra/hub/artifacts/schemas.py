"""Artifact API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exekra.hub.artifacts.models import Artifact
from exekra.hub.schemas import ApiAnswer


class ArtifactOut(ApiAnswer):
    """One file an execution attached (rendered by `artifact_to_api`)."""

    id: str
    execution_id: str
    attempt: int
    name: str
    content_type: str
    size: int
    node_id: str
    created_at: datetime


class ArtifactAnswer(ApiAnswer):
    """A runner's upload, stored."""

    artifact: ArtifactOut


class ArtifactList(ApiAnswer):
    """An execution's files, oldest first, and their total size in bytes."""

    artifacts: list[ArtifactOut]
    total_bytes: int


def artifact_to_api(a: Artifact) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "executionId": str(a.execution_id),
        "attempt": a.attempt,
        "name": a.name,
        "contentType": a.content_type,
        "size": a.size,
        "nodeId": a.node_id,
        "createdAt": a.created_at,
    }
