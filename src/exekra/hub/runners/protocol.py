"""Routes: the runner protocol (SPEC §7.3). Never rate limited by the user-facing limiter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from exekra import __version__
from exekra.hub.artifacts.schemas import ArtifactAnswer, artifact_to_api
from exekra.hub.artifacts.service import ArtifactUpload
from exekra.hub.deps import HubDep, RunnerAuth, client_ip
from exekra.hub.errors import NotAuthenticated, RateLimited
from exekra.hub.executions.api import DUPLICATE, one_execution
from exekra.hub.executions.children import ChildRequest
from exekra.hub.executions.models import ExecutionStatus
from exekra.hub.executions.schemas import CreatedExecutionAnswer, ExecutionAnswer
from exekra.hub.responses import ORJSONResponse, documented
from exekra.hub.routing import LeanRoute
from exekra.hub.runners import service
from exekra.hub.runners.schemas import (
    AttemptBody,
    ChildBody,
    CompleteAnswer,
    CompleteBody,
    ExecutionStatusAnswer,
    HeartbeatAnswer,
    HeartbeatBody,
    LogsAnswer,
    LogsBody,
    MachineMetrics,
    PollAnswer,
    RunnerAuthAnswer,
    RunnerAuthBody,
    RunnerCredentialAnswer,
)

# Every answer is an ORJSONResponse built here: the hot path pays for neither FastAPI's jsonable_encoder nor a
# response model's validation. `documented` names each answer's model in the OpenAPI document. The routes are
# LeanRoutes: declared as FastAPI routes, answered without FastAPI's per-request dependency solving.
router = APIRouter(prefix="/api/runner", tags=["runner protocol"], route_class=LeanRoute)


@router.post("/auth", **documented(RunnerAuthAnswer))
async def auth(body: RunnerAuthBody, request: Request, hub: HubDep) -> ORJSONResponse:
    """Exchange machine credentials for a short-lived runner token and the hub's intervals."""
    ip = client_ip(request)
    limit = hub.settings.runner_auth_failures_per_minute
    blocked = await hub.limiter.peek_exceeded("runner-auth", ip, limit)
    if blocked is not None:
        raise RateLimited("Too many failed runner sign-ins from this address", headers=blocked.headers())
    try:
        runner = await service.authenticate_runner(
            hub.db,
            body.machine_key,
            body.machine_secret,
            body.hostname,
            body.os,
            body.version,
            service.Declaration.of(body.catalogue),
        )
    except NotAuthenticated:
        await hub.limiter.hit("runner-auth", ip, limit)
        raise
    token, expires_at = hub.runner_tokens.issue(runner.id, runner.token_epoch)
    s = hub.settings
    return ORJSONResponse(
        {
            "token": token,
            "expiresAt": datetime.fromtimestamp(expires_at, UTC),
            "runnerId": str(runner.id),
            "runnerName": runner.name,
            "heartbeatIntervalSeconds": s.heartbeat_interval_seconds,
            "pollIntervalSeconds": s.poll_interval_seconds,
            "maxLongPollSeconds": s.max_long_poll_seconds,
            "reportIntervalSeconds": s.report_interval_seconds,
            "artifactMaxBytes": s.artifact_max_bytes,
            "hubVersion": __version__,
            "completeTakesLines": True,
            "completeHandsNext": True,
        }
    )


@router.post("/heartbeat", **documented(HeartbeatAnswer))
async def heartbeat(body: HeartbeatBody, claims: RunnerAuth, hub: HubDep) -> ORJSONResponse:
    """Sign of life with metrics; answers the ids of executions the runner must stop, and whether the hub wants
    the runner's catalogue again (its digest differs from the one the hub holds)."""
    metrics = body.model_dump(include=set(MachineMetrics.model_fields))
    declared = service.Declaration.of(body.catalogue) if body.catalogue is not None else None
    beat = await hub.executions.heartbeat(claims, metrics, body.catalogue_digest, declared)
    return ORJSONResponse(
        {
            "status": beat.status,
            "stopExecutionIds": [str(i) for i in beat.stop_execution_ids],
            "catalogueWanted": beat.catalogue_wanted,
        }
    )


@router.get("/poll", **documented(PollAnswer, also={204: {"description": "No work for this runner within `wait` s"}}))
async def poll(claims: RunnerAuth, hub: HubDep, wait: Annotated[float, Query(ge=0, le=30)] = 0) -> Response:
    """The held execution (ASSIGNED or RUNNING), a newly claimed one, or 204 after `wait` seconds."""
    held = await hub.executions.poll(claims, wait)
    return ORJSONResponse({"execution": held}) if held is not None else Response(status_code=204)


@router.post("/executions/{execution_id}/start", **documented(ExecutionStatusAnswer))
async def start(execution_id: str, body: AttemptBody, claims: RunnerAuth, hub: HubDep) -> ORJSONResponse:
    await hub.executions.start(claims, execution_id, body.attempt)
    return ORJSONResponse({"status": ExecutionStatus.RUNNING.value})


@router.post("/executions/{execution_id}/logs", **documented(LogsAnswer))
async def logs(execution_id: str, body: LogsBody, claims: RunnerAuth, hub: HubDep) -> ORJSONResponse:
    """Append a batch of lines (may be empty); answers whether a stop was requested."""
    stop_requested = await hub.executions.append_logs(claims, execution_id, body.attempt, body.stored_lines())
    return ORJSONResponse({"stopRequested": stop_requested})


_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes; `Content-Type` is its type, `Content-Length` its size.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post("/executions/{execution_id}/artifacts", openapi_extra=_BINARY_BODY, **documented(ArtifactAnswer, 201))
async def upload_artifact(
    execution_id: str,
    request: Request,
    claims: RunnerAuth,
    hub: HubDep,
    attempt: Annotated[int, Query(ge=1)],
    name: Annotated[str, Query(min_length=1, max_length=255)],
    node_id: Annotated[str, Query(alias="nodeId", max_length=255)] = "",
) -> ORJSONResponse:
    """Store a file the execution attached (fenced like `logs`); the body is the file, streamed."""
    length = request.headers.get("content-length", "")
    upload = ArtifactUpload(
        name=name,
        content_type=request.headers.get("content-type", ""),
        node_id=node_id,
        declared_size=int(length) if length.isdigit() else None,
        body=request.stream(),
    )
    artifact = await hub.executions.store_artifact(claims, execution_id, attempt, upload)
    return ORJSONResponse({"artifact": artifact_to_api(artifact)}, status_code=201)


@router.get("/executions/{execution_id}/credentials/{name}", **documented(RunnerCredentialAnswer))
async def credential(
    execution_id: str, name: str, claims: RunnerAuth, hub: HubDep, attempt: Annotated[int, Query(ge=1)]
) -> ORJSONResponse:
    """A decrypted credential, only for the runner running that attempt of a workflow that references it."""
    return ORJSONResponse({"credential": await hub.executions.credential(claims, execution_id, name, attempt)})


@router.post("/executions/{execution_id}/children", **documented(CreatedExecutionAnswer, 201, also=DUPLICATE))
async def start_child(execution_id: str, body: ChildBody, claims: RunnerAuth, hub: HubDep) -> ORJSONResponse:
    """`workflow.run`: start a child execution of the RUNNING attempt (fenced like `logs`), linked by `parentId`.
    201 with the child; 200 with the child its `key` already started (`duplicate`). 409 `subworkflow_refused` when
    it would pass the depth limit, close a cycle, or need a runner that only the executions above it hold."""
    request = ChildRequest(body.key, body.workflow, body.inputs, body.version)
    created = await hub.executions.start_child(claims, execution_id, body.attempt, request)
    answer = await one_execution(hub, await hub.executions.get(created.execution.id))
    return ORJSONResponse({**answer, "duplicate": created.duplicate}, status_code=200 if created.duplicate else 201)


@router.get("/executions/{execution_id}/children/{child_id}", **documented(ExecutionAnswer))
async def child(
    execution_id: str,
    child_id: str,
    claims: RunnerAuth,
    hub: HubDep,
    attempt: Annotated[int, Query(ge=1)],
    wait: Annotated[float, Query(ge=0, le=30, description="hold the answer until the child ends")] = 0,
) -> ORJSONResponse:
    """A child of the attempt, as `GET /api/executions/{id}?wait=` answers it (`waitingReason` included)."""
    view = await hub.executions.wait_for_child(claims, execution_id, attempt, child_id, wait)
    return ORJSONResponse(await one_execution(hub, view))


@router.post("/executions/{execution_id}/children/{child_id}/stop", **documented(ExecutionAnswer))
async def stop_child(
    execution_id: str, child_id: str, body: AttemptBody, claims: RunnerAuth, hub: HubDep
) -> ORJSONResponse:
    """Stop a child of the attempt (the `workflow.run` node that waited for it timed out or was cancelled)."""
    await hub.executions.stop_child(claims, execution_id, body.attempt, child_id)
    return ORJSONResponse(await one_execution(hub, await hub.executions.get(child_id)))


@router.post("/executions/{execution_id}/complete", **documented(CompleteAnswer))
async def complete(execution_id: str, body: CompleteBody, claims: RunnerAuth, hub: HubDep) -> ORJSONResponse:
    """The final report, with the log lines not sent yet; the runner is idle again and is offered the next
    execution at once. With `takeNext`, the answer's `next` is the execution that offer assigned to the runner, as a
    poll would answer it, or one assigned to it within `wait` seconds (`null`: none; the runner polls)."""
    following = await hub.executions.complete(
        claims,
        execution_id,
        body.attempt,
        ExecutionStatus(body.status),
        error=body.error,
        outputs=body.outputs,
        metrics=body.metrics.model_dump(by_alias=True),
        lines=body.stored_lines(),
        take_next=body.take_next,
        wait=body.wait,
    )
    if body.take_next:
        return ORJSONResponse({"status": body.status, "next": following})
    return ORJSONResponse({"status": body.status})
