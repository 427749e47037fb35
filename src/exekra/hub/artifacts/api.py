"""Routes: an execution's artifacts (list, download). Runners upload them through the runner protocol."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from exekra.hub.artifacts import service
from exekra.hub.artifacts.schemas import ArtifactList, artifact_to_api
from exekra.hub.deps import CurrentUser, HubDep

router = APIRouter(prefix="/api/executions", tags=["artifacts"])

_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, with its content type and `Content-Disposition: attachment; filename=…`.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get("/{execution_id}/artifacts", response_model=ArtifactList)
async def list_artifacts(execution_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """The files the execution attached (screenshots, reports, downloads), oldest first."""
    artifacts = await service.list_artifacts(hub.db, execution_id)
    return {"artifacts": [artifact_to_api(a) for a in artifacts], "totalBytes": sum(a.size for a in artifacts)}


@router.get("/{execution_id}/artifacts/{artifact_id}", response_class=StreamingResponse, responses=_FILE)
async def download_artifact(execution_id: str, artifact_id: str, user: CurrentUser, hub: HubDep) -> StreamingResponse:
    """Download one file (audited: `artifact.download`)."""
    found = await service.download(hub.db, hub.settings, execution_id, artifact_id, user.actor)
    artifact = found.artifact
    headers = {
        "Content-Disposition": content_disposition(artifact.name),
        "Content-Length": str(artifact.size),
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(found.chunks, media_type=artifact.content_type, headers=headers)


def content_disposition(name: str) -> str:
    """`attachment` with the name as ASCII (`filename`) and as UTF-8 (`filename*`, RFC 6266)."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
