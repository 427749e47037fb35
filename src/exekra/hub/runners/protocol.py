"""Routes: the runner protocol (SPEC §7.3). Never rate limited by the user-facing limiter."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from exekra import __version__
from exekra.hub import lifecycle
from exekra.hub.auth.security import RunnerClaims
from exekra.hub.deps import HubDep, RunnerAuth, client_ip
from exekra.hub.dispatch.matcher import RunnerProfile
from exekra.hub.errors import Forbidden, NotAuthenticated, NotFound, PayloadTooLarge, RateLimited
from exekra.hub.executions.models import ExecutionStatus
from exekra.hub.lookup import parse_id
from exekra.hub.runners import service
from exekra.hub.runners.schemas import AttemptBody, CompleteBody, HeartbeatBody, LogsBody, RunnerAuthBody

router = APIRouter(prefix="/api/runner", tags=["runner protocol"])


def _held(execution_id: str, claims: RunnerClaims, attempt: int) -> lifecycle.Attempt:
    return lifecycle.Attempt(parse_id(execution_id, "execution"), claims.runner_id, claims.epoch, attempt)


@router.post("/auth")
async def auth(body: RunnerAuthBody, request: Request, hub: HubDep) -> dict[str, Any]:
    """Exchange machine credentials for a short-lived runner token and the hub's intervals."""
    ip = client_ip(request)
    limit = hub.settings.runner_auth_failures_per_minute
    blocked = await hub.limiter.peek_exceeded("runner-auth", ip, limit)
    if blocked is not None:
        raise RateLimited("Too many failed runner sign-ins from this address", headers=blocked.headers())
    try:
        runner = await service.authenticate_runner(
            hub.db, body.machine_key, body.machine_secret, body.hostname, body.os, body.version
        )
    except NotAuthenticated:
        await hub.limiter.hit("runner-auth", ip, limit)
        raise
    token, expires_at = hub.runner_tokens.issue(runner.id, runner.token_epoch)
    s = hub.settings
    from datetime import UTC, datetime

    return {
        "token": token,
        "expiresAt": datetime.fromtimestamp(expires_at, UTC),
        "runnerId": str(runner.id),
        "heartbeatIntervalSeconds": s.heartbeat_interval_seconds,
        "pollIntervalSeconds": s.poll_interval_seconds,
        "maxLongPollSeconds": s.max_long_poll_seconds,
        "reportIntervalSeconds": s.report_interval_seconds,
        "hubVersion": __version__,
    }


@router.post("/heartbeat")
async def heartbeat(body: HeartbeatBody, claims: RunnerAuth, hub: HubDep) -> dict[str, Any]:
    """Sign of life with metrics; answers the ids of executions the runner must stop."""
    metrics = body.model_dump(exclude={"execution_id"})
    async with hub.db.transaction() as session:
        presence = await lifecycle.heartbeat_runner(session, claims.runner_id, claims.epoch, metrics)
        if presence is None:
            raise NotAuthenticated("Runner token revoked: authenticate again")
        stop_ids = (
            await lifecycle.stop_requested_ids(session, claims.runner_id) if presence.current_execution_id else []
        )
    return {"status": presence.status, "stopExecutionIds": [str(i) for i in stop_ids]}


@router.get("/poll", response_model=None)
async def poll(
    claims: RunnerAuth, hub: HubDep, wait: Annotated[float, Query(ge=0, le=30)] = 0
) -> dict[str, Any] | Response:
    """The held execution (ASSIGNED or RUNNING), a newly claimed one, or 204 after `wait` seconds."""
    runner_id = claims.runner_id
    dispatcher = hub.dispatcher
    # Registered before the runner shows up as idle, so an assignment made by anyone from then on wakes us.
    event = dispatcher.register_waiter(runner_id)
    try:
        async with hub.db.transaction() as session:
            presence = await lifecycle.touch_runner(session, runner_id, claims.epoch)
        if presence is None:
            raise NotAuthenticated("Runner token revoked: authenticate again")
        execution_id = presence.current_execution_id
        if execution_id is None and presence.enabled:
            profile = RunnerProfile(runner_id, presence.type, presence.labels)
            assignment = await dispatcher.runner_idle(runner_id, profile)
            if assignment is not None:
                execution_id = assignment.execution_id
            else:
                if wait > 0 and not event.is_set():
                    await dispatcher.wait_for_work(runner_id, event, min(wait, hub.settings.max_long_poll_seconds))
                # Work assigned by a concurrent match (a create, the sweeper, another hub process) sets the
                # event; a long poll that was not woken has nothing to read (a wake-up lost while the LISTEN
                # connection was down is repaired by waking every poll when it reconnects). A poll that did not
                # wait still looks once: a match may have committed a moment before it sets the event.
                if wait > 0 and not event.is_set():
                    return Response(status_code=204)
                held = await service.held_execution(hub.db, runner_id)  # whatever it was woken for, in one read
                return {"execution": held} if held is not None else Response(status_code=204)
    finally:
        dispatcher.unregister_waiter(runner_id, event)
    if execution_id is not None:
        held = await service.held_execution(hub.db, runner_id, execution_id)
        if held is not None:
            return {"execution": held}
    return Response(status_code=204)


@router.post("/executions/{execution_id}/start")
async def start(execution_id: str, body: AttemptBody, claims: RunnerAuth, hub: HubDep) -> dict[str, Any]:
    async with hub.db.transaction() as session:
        started = await lifecycle.start(session, _held(execution_id, claims, body.attempt))
    if not started:
        raise await service.refused(hub.db, claims, execution_id)
    return {"status": ExecutionStatus.RUNNING.value}


@router.post("/executions/{execution_id}/logs")
async def logs(execution_id: str, body: LogsBody, claims: RunnerAuth, hub: HubDep) -> dict[str, Any]:
    """Append a batch of lines (may be empty); answers whether a stop was requested."""
    if len(body.lines) > hub.settings.max_log_lines_per_batch:
        raise PayloadTooLarge(f"At most {hub.settings.max_log_lines_per_batch} lines per batch")
    stop_requested = await service.append_logs(
        hub.db, claims, execution_id, body.attempt, body.lines, hub.settings.max_log_line_chars
    )
    if stop_requested is None:
        raise await service.refused(hub.db, claims, execution_id)
    return {"stopRequested": stop_requested}


@router.get("/executions/{execution_id}/credentials/{name}")
async def credential(
    execution_id: str, name: str, claims: RunnerAuth, hub: HubDep, attempt: Annotated[int, Query(ge=1)]
) -> dict[str, Any]:
    """A decrypted credential, only for the runner running that attempt of a workflow that references it."""
    from exekra.hub.credentials.service import credential_for_runner
    from exekra.workflow.definition import referenced_credentials

    async with hub.db.session() as session:
        definition = await service.held_definition(session, _held(execution_id, claims, attempt))
        referenced = definition is not None and name in referenced_credentials(definition)
        found = await credential_for_runner(session, hub.secret_key, name) if referenced else None
    if definition is None:
        raise await service.refused(hub.db, claims, execution_id)
    if not referenced:
        raise Forbidden(f"The workflow does not reference credential {name}")
    if found is None:
        raise NotFound(f"credential {name} not found")
    return {"credential": found}


@router.post("/executions/{execution_id}/complete")
async def complete(execution_id: str, body: CompleteBody, claims: RunnerAuth, hub: HubDep) -> dict[str, Any]:
    """The final report; the runner is idle again and is offered the next execution at once."""
    async with hub.db.transaction() as session:
        finished = await lifecycle.finish(
            session,
            _held(execution_id, claims, body.attempt),
            ExecutionStatus(body.status),
            error=body.error,
            outputs=body.outputs,
            metrics=body.metrics.model_dump(by_alias=True),
        )
    if not finished:
        raise await service.refused(hub.db, claims, execution_id)
    # Offered the next execution before the answer: were it offered after, the runner's next poll would race
    # with it, and the loser's claim attempt would be wasted (measured: a few per execution under load).
    await hub.dispatcher.runner_idle(claims.runner_id)
    return {"status": body.status}
