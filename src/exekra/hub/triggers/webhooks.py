"""Route: `POST /api/webhooks/{token}` (SPEC §7.2). The token is the credential; no user rate limit,
but each trigger has its own (`EXEKRA_WEBHOOK_RATE_PER_MINUTE`)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request

from exekra.hub.deps import HubDep, client_ip
from exekra.hub.errors import BadRequest, RateLimited
from exekra.hub.responses import ORJSONResponse, documented
from exekra.hub.triggers import firing
from exekra.hub.triggers.schemas import WebhookAnswer

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post(
    "/{token}",
    **documented(WebhookAnswer, 202, also={200: {"model": WebhookAnswer, "description": "A repeated idempotency key"}}),
)
async def call_webhook(
    token: str,
    request: Request,
    hub: HubDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> ORJSONResponse:
    """Start the trigger's workflow with the JSON body as its `payload` input.

    `202 {"executionId", "status", "duplicate": false}`; a repeated `Idempotency-Key` within the dedup
    window answers `200` with the first execution and `"duplicate": true`.
    """
    trigger = await firing.webhook_trigger(hub.db, token)
    decision = await hub.limiter.hit("webhook", str(trigger.id), hub.settings.webhook_rate_per_minute)
    if not decision.allowed:
        raise RateLimited(f"Too many calls of webhook {trigger.name}, slow down", headers=decision.headers())
    body = await request.body()
    try:
        payload = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        raise BadRequest("Malformed JSON body") from None
    created = await firing.start_from_webhook(
        hub.executions, trigger, payload, idempotency_key=idempotency_key, ip=client_ip(request)
    )
    execution = created.execution
    answer = {"executionId": str(execution.id), "status": execution.status, "duplicate": created.duplicate}
    return ORJSONResponse(answer, status_code=200 if created.duplicate else 202)
