"""Routes: workflows, their versions, publishing, export and import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from exekra.hub.deps import CurrentUser, DeveloperUser, HubDep, Paging
from exekra.hub.lookup import IdPrefixQuery
from exekra.hub.workflows import service
from exekra.hub.workflows.schemas import (
    ExportAnswer,
    NewVersion,
    NewWorkflow,
    PublishBody,
    VersionAnswer,
    VersionPage,
    WorkflowAnswer,
    WorkflowDetailAnswer,
    WorkflowImport,
    WorkflowPage,
    WorkflowPatch,
    WorkflowWithVersion,
    export_to_api,
    version_to_api,
    workflow_to_api,
)

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


@router.get("", response_model=WorkflowPage)
async def list_workflows(
    user: CurrentUser,
    hub: HubDep,
    paging: Paging,
    id_prefix: IdPrefixQuery,
    q: Annotated[str | None, Query(max_length=200)] = None,
    archived: bool = False,
) -> dict[str, Any]:
    """Workflows by name; `q` searches name and description; archived ones only with `archived=true`."""
    summaries, total = await service.list_workflows(
        hub.db, offset=paging.offset, limit=paging.limit, search=q, archived=archived, id_prefix=id_prefix
    )
    return {
        "workflows": [workflow_to_api(s) for s in summaries],
        "total": total,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": None,
    }


@router.post("", response_model=WorkflowWithVersion, status_code=201)
async def create_workflow(body: NewWorkflow, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Create a workflow whose version 1 is a draft (publish it to run it)."""
    summary, version = await service.create_workflow(
        hub.db, body, user.actor, max_definition_bytes=hub.settings.max_definition_bytes
    )
    return {"workflow": workflow_to_api(summary), "version": version_to_api(version)}


@router.post("/import", response_model=WorkflowWithVersion, status_code=201)
async def import_workflow(
    body: WorkflowImport,
    user: DeveloperUser,
    hub: HubDep,
    mode: Annotated[service.ImportMode, Query()] = "create",
) -> dict[str, Any]:
    """Create a workflow from an export document; `mode=new-version` adds a draft to the same-named one."""
    summary, version = await service.import_workflow(
        hub.db, body, user.actor, mode=mode, max_definition_bytes=hub.settings.max_definition_bytes
    )
    return {"workflow": workflow_to_api(summary), "version": version_to_api(version)}


@router.get("/{workflow_id}", response_model=WorkflowDetailAnswer)
async def get_workflow(workflow_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """A workflow with its versions, newest first (definitions via `/versions/{number}`)."""
    return {"workflow": workflow_to_api(await service.get_workflow(hub.db, workflow_id), with_versions=True)}


@router.patch("/{workflow_id}", response_model=WorkflowAnswer)
async def update_workflow(workflow_id: str, body: WorkflowPatch, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Edit settings (versions are changed only by saving a new one)."""
    return {"workflow": workflow_to_api(await service.update_workflow(hub.db, workflow_id, body, user.actor))}


@router.delete("/{workflow_id}", response_model=WorkflowAnswer)
async def archive_workflow(workflow_id: str, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Archive: history is kept, new executions are refused; `PATCH {"archived": false}` restores it."""
    return {"workflow": workflow_to_api(await service.archive_workflow(hub.db, workflow_id, user.actor))}


@router.post("/{workflow_id}/versions", response_model=VersionAnswer, status_code=201)
async def create_version(workflow_id: str, body: NewVersion, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Save a new draft."""
    version = await service.create_version(
        hub.db, workflow_id, body.definition, user.actor, max_definition_bytes=hub.settings.max_definition_bytes
    )
    return {"version": version_to_api(version)}


@router.get("/{workflow_id}/versions", response_model=VersionPage)
async def list_versions(workflow_id: str, user: CurrentUser, hub: HubDep, paging: Paging) -> dict[str, Any]:
    """Version history, newest first, without definitions."""
    versions, total = await service.list_versions(hub.db, workflow_id, offset=paging.offset, limit=paging.limit)
    return {
        "versions": [version_to_api(v, with_definition=False) for v in versions],
        "total": total,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": None,
    }


@router.get("/{workflow_id}/versions/{number}", response_model=VersionAnswer)
async def get_version(workflow_id: str, number: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"version": version_to_api(await service.get_version(hub.db, workflow_id, number))}


@router.post("/{workflow_id}/publish", response_model=WorkflowWithVersion)
async def publish(
    workflow_id: str, user: DeveloperUser, hub: HubDep, body: Annotated[PublishBody | None, Body()] = None
) -> dict[str, Any]:
    """Publish the latest version, which must be a draft, or with `{"version": N}` any version that is not the
    published one: publishing an earlier version is a rollback. The previously published version is
    superseded; executions already created keep their version."""
    number = body.version if body is not None else None
    summary, version = await service.publish(hub.db, workflow_id, user.actor, number)
    return {"workflow": workflow_to_api(summary), "version": version_to_api(version)}


@router.get("/{workflow_id}/export", response_model=ExportAnswer)
async def export_workflow(workflow_id: str, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """A portable document with the settings and the published (else latest) definition."""
    workflow, version = await service.export_workflow(hub.db, workflow_id)
    return {"export": export_to_api(workflow, version)}
