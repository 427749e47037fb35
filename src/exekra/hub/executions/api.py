"""Routes: executions (create, list, detail, logs, stop, retry)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from exekra.hub.context import Hub
from exekra.hub.deps import CurrentUser, HubDep, Paging, Principal, rate_limit
from exekra.hub.errors import ValidationFailed
from exekra.hub.executions.creation import Created, ExecutionRequest
from exekra.hub.executions.models import ExecutionStatus, TriggerType
from exekra.hub.executions.names import names_of, waiting_reasons
from exekra.hub.executions.nodes import execution_graph, runs_to_api
from exekra.hub.executions.queries import ExecutionFilter, ExecutionView
from exekra.hub.executions.schemas import (
    CreatedExecutionAnswer,
    ExecutionAnswer,
    ExecutionPage,
    LogPage,
    NewExecution,
    NodeRunsAnswer,
    execution_to_api,
    log_line_to_api,
)
from exekra.hub.lookup import IdPrefixQuery
from exekra.hub.responses import ORJSONResponse, documented
from exekra.hub.routing import LeanRoute

router = APIRouter(prefix="/api/executions", tags=["executions"])
# The two routes on every execution's way, its creation and the read its client waits on (`?wait=`), are LeanRoutes
# served by the hub's lane (`HubApp`), past FastAPI's layers; rate limited by this router's own dependency (it is
# included as it is, without the one the other routers are included with). So is the retry, also a creation: served
# by FastAPI's router, its answer lacked the rate limit's headers (tests/integration/test_errors_and_limits.py).
hot_router = APIRouter(
    prefix="/api/executions", tags=["executions"], route_class=LeanRoute, dependencies=[Depends(rate_limit)]
)

DUPLICATE = {200: {"model": CreatedExecutionAnswer, "description": "A repeated idempotency key: the first execution"}}
_SSE = (
    "Server-Sent Events: `event: log` whose `data` is a log line `{seq, ts, level, message}` as in `GET …/logs`, "
    'then `event: end` whose `data` is `{"status": …}` when the execution is over.'
)


async def _created(hub: Hub, created: Created, user: Principal) -> ORJSONResponse:
    """201 with the new execution; 200 with the first one for a repeated idempotency key."""
    if created.duplicate:  # the first execution, perhaps somebody else's
        names = (await names_of(hub.db, [created.execution])).of(created.execution)
    else:
        waiting = await waiting_reasons(hub.db, [created.execution])
        names = {"triggered_by_name": user.email, "waiting_reason": waiting.get(created.execution.id)}
    body = {"execution": execution_to_api(created.execution, **names), "duplicate": created.duplicate}
    return ORJSONResponse(body, status_code=200 if created.duplicate else 201)


async def one_execution(hub: Hub, view: ExecutionView) -> dict[str, Any]:
    """`{"execution": …}` with the names beside the ids and the waiting reason (here and for runner routes)."""
    names = view.names or await names_of(hub.db, [view.execution])
    execution = view.execution
    return {"execution": execution_to_api(execution, view.workflow_name, view.version_number, **names.of(execution))}


@hot_router.post("", **documented(CreatedExecutionAnswer, 201, also=DUPLICATE))
async def create_execution(
    body: NewExecution,
    user: CurrentUser,
    hub: HubDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> ORJSONResponse:
    """Queue an execution of the workflow's published version; returns at once with status QUEUED.

    A repeated `idempotencyKey` (or `Idempotency-Key` header) within the dedup window answers 200 with the
    first execution and `"duplicate": true`.
    """
    request = ExecutionRequest(
        workflow_id=body.workflow_id,
        inputs=body.inputs,
        trigger_type=TriggerType.API,
        triggered_by=str(user.user_id),
        priority=body.priority,
        runner_id=body.runner_id,
        idempotency_key=body.idempotency_key or idempotency_key,
    )
    return await _created(hub, await hub.executions.create(request, user.actor), user)


@router.get("", response_model=ExecutionPage)
async def list_executions(
    user: CurrentUser,
    hub: HubDep,
    paging: Paging,
    id_prefix: IdPrefixQuery,
    workflow_id: Annotated[str | None, Query(alias="workflowId", max_length=64)] = None,
    runner_id: Annotated[str | None, Query(alias="runnerId", max_length=64)] = None,
    retry_of: Annotated[
        str | None, Query(alias="retryOf", max_length=64, description="the automatic retry of this execution")
    ] = None,
    parent_id: Annotated[
        str | None, Query(alias="parentId", max_length=64, description="the sub-workflows this execution started")
    ] = None,
    status: Annotated[str | None, Query(max_length=200, description="one status or a comma-separated list")] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    exact_total: Annotated[bool, Query(alias="exactTotal")] = False,
) -> dict[str, Any]:
    """Newest first. `total` counts the matches up to `EXEKRA_EXECUTIONS_TOTAL_CAP` (`totalCapped` when
    there are more), every match with `exactTotal=true`; keyset pages (`cursor`) are not counted (`null`).
    """
    statuses = tuple(s.strip().upper() for s in status.split(",") if s.strip()) if status else ()
    unknown = [s for s in statuses if s not in ExecutionStatus.__members__]
    if unknown:
        raise ValidationFailed(f"status: unknown status {unknown[0]}")
    f = ExecutionFilter(
        workflow_id=_filter_id(workflow_id, "workflowId"),
        runner_id=_filter_id(runner_id, "runnerId"),
        retry_of=_filter_id(retry_of, "retryOf"),
        parent_id=_filter_id(parent_id, "parentId"),
        statuses=statuses,
        since=since,
        until=until,
        id_prefix=id_prefix,
    )
    page = await hub.executions.history(
        f, offset=paging.offset, limit=paging.limit, cursor=cursor, exact_total=exact_total
    )
    names = await names_of(hub.db, (v.execution for v in page.rows))
    return {
        "executions": [
            execution_to_api(v.execution, v.workflow_name, v.version_number, **names.of(v.execution)) for v in page.rows
        ],
        "total": page.total.value if page.total else None,
        "totalCapped": page.total.capped if page.total else False,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": page.next_cursor,
    }


def _filter_id(value: str | None, name: str) -> uuid.UUID | None:
    """An id given as a filter: a malformed one is a validation error, not a missing resource."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed(f"{name}: not a valid id") from None


@hot_router.get("/{execution_id}", **documented(ExecutionAnswer))
async def get_execution(
    execution_id: str,
    user: CurrentUser,
    hub: HubDep,
    wait: Annotated[float, Query(ge=0, le=30, description="hold the answer until the execution ends")] = 0,
) -> ORJSONResponse:
    """The execution. With `wait` (seconds, at most 30), an execution that has not ended yet is answered when
    it ends (COMPLETED, FAILED or STOPPED) or when `wait` passes, whichever comes first: the way to wait for
    a result without polling."""
    if wait <= 0:
        view = await hub.executions.get(execution_id)
    else:
        view = await hub.executions.wait_for_end(execution_id, wait)
    return ORJSONResponse(await one_execution(hub, view))


@router.get("/{execution_id}/logs", response_model=LogPage)
async def get_logs(
    execution_id: str,
    user: CurrentUser,
    hub: HubDep,
    after_seq: Annotated[int, Query(alias="afterSeq", ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    lines, next_seq = await hub.executions.logs(execution_id, after_seq, limit)
    return {"lines": [log_line_to_api(x) for x in lines], "nextSeq": next_seq}


@router.get("/{execution_id}/nodes", response_model=NodeRunsAnswer)
async def get_nodes(execution_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """Every node of the execution's version, in the definition's order, with its state (NOT_REACHED,
    RUNNING, COMPLETED, FAILED, SKIPPED, STOPPED), start, end and duration, from the log's node events."""
    _, runs = await execution_graph(hub.db, execution_id)
    return {"nodes": runs_to_api(runs)}


@router.get(
    "/{execution_id}/logs/stream",
    response_class=StreamingResponse,
    responses={200: {"description": _SSE, "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream_logs(
    execution_id: str,
    user: CurrentUser,
    hub: HubDep,
    after_seq: Annotated[int, Query(alias="afterSeq", ge=0)] = 0,
) -> StreamingResponse:
    """Server-Sent Events: one `log` event per line, then an `end` event when the execution is over.

    At most `EXEKRA_LOG_STREAMS_PER_USER` streams per user (429 beyond); a stream ends without `end` after
    `EXEKRA_LOG_STREAM_MAX_SECONDS` or when the hub shuts down: reconnect with `afterSeq` set to the last seq.
    """
    events = await hub.executions.follow_logs(execution_id, after_seq, str(user.user_id))

    async def body() -> AsyncIterator[bytes]:
        async for event in events:
            if event.line is not None:
                yield (
                    b"event: log\ndata: " + orjson.dumps(log_line_to_api(event.line), option=orjson.OPT_UTC_Z) + b"\n\n"
                )
            else:
                yield b"event: end\ndata: " + orjson.dumps({"status": event.end_status}) + b"\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/{execution_id}/stop", response_model=ExecutionAnswer)
async def stop_execution(execution_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """QUEUED/ASSIGNED stop at once; RUNNING gets `stopRequested` and the runner confirms."""
    stopped = await hub.executions.stop(execution_id, user.actor)
    return {"execution": execution_to_api(stopped, **(await names_of(hub.db, [stopped])).of(stopped))}


@hot_router.post("/{execution_id}/retry", **documented(CreatedExecutionAnswer, 201, also=DUPLICATE))
async def retry_execution(execution_id: str, user: CurrentUser, hub: HubDep) -> ORJSONResponse:
    """A new execution with the same version and inputs."""
    return await _created(hub, await hub.executions.retry(execution_id, user.actor), user)
