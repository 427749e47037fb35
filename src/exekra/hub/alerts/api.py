"""Routes: alert channels (write: ADMIN), rules (write: ADMIN, DEVELOPER), deliveries (read: any user)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from exekra.hub.alerts import service
from exekra.hub.alerts.models import DeliveryStatus
from exekra.hub.alerts.schemas import (
    ChannelAnswer,
    ChannelPage,
    ChannelPatch,
    ChannelTestAnswer,
    ChannelWithSecret,
    DeliveryAnswer,
    DeliveryPage,
    NewChannel,
    NewRule,
    RuleAnswer,
    RulePage,
    RulePatch,
    channel_to_api,
    delivery_to_api,
    rule_to_api,
)
from exekra.hub.deps import AdminUser, CurrentUser, DeveloperUser, HubDep, Paging
from exekra.hub.schemas import OkAnswer

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


def _page(name: str, items: list[dict[str, Any]], total: int, paging: Any) -> dict[str, Any]:
    return {name: items, "total": total, "page": paging.page, "limit": paging.limit, "nextCursor": None}


@router.get("/channels", response_model=ChannelPage)
async def list_channels(user: CurrentUser, hub: HubDep, paging: Paging) -> dict[str, Any]:
    """Alert channels by name (never with their secrets)."""
    channels, total = await service.list_channels(hub.db, offset=paging.offset, limit=paging.limit)
    return _page("channels", [channel_to_api(c) for c in channels], total, paging)


@router.post("/channels", response_model=ChannelWithSecret, response_model_exclude_unset=True, status_code=201)
async def create_channel(body: NewChannel, user: AdminUser, hub: HubDep) -> dict[str, Any]:
    """Create an EMAIL, WEBHOOK or SLACK channel; a webhook's signing secret is shown only in this answer."""
    channel, secret = await service.create_channel(hub.db, hub.secret_key, body, user.actor)
    answer: dict[str, Any] = {"channel": channel_to_api(channel)}
    if secret is not None:
        answer["secret"] = secret
    return answer


@router.get("/channels/{channel_id}", response_model=ChannelAnswer)
async def get_channel(channel_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"channel": channel_to_api(await service.get_channel(hub.db, channel_id))}


@router.patch("/channels/{channel_id}", response_model=ChannelAnswer)
async def update_channel(channel_id: str, body: ChannelPatch, user: AdminUser, hub: HubDep) -> dict[str, Any]:
    """Rename, enable or disable, or change a channel's URL or recipients."""
    channel = await service.update_channel(hub.db, hub.secret_key, channel_id, body, user.actor)
    return {"channel": channel_to_api(channel)}


@router.delete("/channels/{channel_id}", response_model=OkAnswer)
async def delete_channel(channel_id: str, user: AdminUser, hub: HubDep) -> dict[str, Any]:
    """Delete a channel no rule uses (409 otherwise)."""
    await service.delete_channel(hub.db, channel_id, user.actor)
    return {"ok": True}


@router.post("/channels/{channel_id}/rotate-secret", response_model=ChannelWithSecret)
async def rotate_channel_secret(channel_id: str, user: AdminUser, hub: HubDep) -> dict[str, Any]:
    """A new signing secret for a WEBHOOK channel, shown only in this answer."""
    channel, secret = await service.rotate_channel_secret(hub.db, hub.secret_key, channel_id, user.actor)
    return {"channel": channel_to_api(channel), "secret": secret}


@router.post("/channels/{channel_id}/test", response_model=ChannelTestAnswer, status_code=202)
async def test_channel(channel_id: str, user: AdminUser, hub: HubDep) -> dict[str, Any]:
    """Queue a test message to the channel; its delivery shows how it went."""
    delivery = await service.queue_test_message(hub.db, channel_id, user.actor, hub.alerts.clock())
    hub.alerts.wake()
    return {"delivery": delivery_to_api(delivery)}


@router.get("/rules", response_model=RulePage)
async def list_rules(
    user: CurrentUser,
    hub: HubDep,
    paging: Paging,
    workflow_id: Annotated[str | None, Query(alias="workflowId", max_length=64)] = None,
) -> dict[str, Any]:
    """Alert rules by name; `workflowId`: the rules that apply to that workflow (its own and the global ones)."""
    rules, total = await service.list_rules(hub.db, workflow_id=workflow_id, offset=paging.offset, limit=paging.limit)
    return _page("rules", [rule_to_api(r) for r in rules], total, paging)


@router.post("/rules", response_model=RuleAnswer, status_code=201)
async def create_rule(body: NewRule, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Create a rule: which events, of which workflow (none: all), to which channel, with what cool-down."""
    return {"rule": rule_to_api(await service.create_rule(hub.db, body, user.actor))}


@router.get("/rules/{rule_id}", response_model=RuleAnswer)
async def get_rule(rule_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"rule": rule_to_api(await service.get_rule(hub.db, rule_id))}


@router.patch("/rules/{rule_id}", response_model=RuleAnswer)
async def update_rule(rule_id: str, body: RulePatch, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    return {"rule": rule_to_api(await service.update_rule(hub.db, rule_id, body, user.actor))}


@router.delete("/rules/{rule_id}", response_model=OkAnswer)
async def delete_rule(rule_id: str, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    await service.delete_rule(hub.db, rule_id, user.actor)
    return {"ok": True}


@router.get("/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    user: CurrentUser,
    hub: HubDep,
    paging: Paging,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    rule_id: Annotated[str | None, Query(alias="ruleId", max_length=64)] = None,
    channel_id: Annotated[str | None, Query(alias="channelId", max_length=64)] = None,
) -> dict[str, Any]:
    """Deliveries newest first; `status=FAILED` lists the ones that gave up."""
    deliveries, total = await service.list_deliveries(
        hub.db, status=status, rule_id=rule_id, channel_id=channel_id, offset=paging.offset, limit=paging.limit
    )
    return _page("deliveries", [delivery_to_api(d) for d in deliveries], total, paging)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryAnswer)
async def get_delivery(delivery_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"delivery": delivery_to_api(await service.get_delivery(hub.db, delivery_id))}


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryAnswer)
async def retry_delivery(delivery_id: str, user: DeveloperUser, hub: HubDep) -> dict[str, Any]:
    """Send a FAILED delivery again, with a fresh set of attempts (409 for one that did not fail)."""
    delivery = await service.retry_delivery(hub.db, delivery_id, user.actor, hub.alerts.clock())
    hub.alerts.wake()
    return {"delivery": delivery_to_api(delivery)}
