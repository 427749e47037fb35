"""Routes: runner administration and metric history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from exekra.hub.deps import AdminUser, CurrentUser, HubDep, Paging
from exekra.hub.lookup import IdPrefixQuery
from exekra.hub.runners import service
from exekra.hub.runners.models import RunnerStatus
from exekra.hub.runners.schemas import (
    NewRunner,
    RunnerAnswer,
    RunnerMetricsAnswer,
    RunnerPage,
    RunnerPatch,
    RunnerWithSecret,
    metric_to_api,
    runner_to_api,
)
from exekra.hub.schemas import OkAnswer

router = APIRouter(prefix="/api/runners", tags=["runners"])


def _with_credentials(registered: service.Registered) -> dict[str, Any]:
    return {
        "runner": runner_to_api(registered.runner),
        "machineKey": registered.machine_key,
        "machineSecret": registered.machine_secret,
    }


@router.get("", response_model=RunnerPage)
async def list_runners(
    user: CurrentUser, hub: HubDep, paging: Paging, id_prefix: IdPrefixQuery, status: RunnerStatus | None = None
) -> dict[str, Any]:
    runners, total = await service.list_runners(
        hub.db, offset=paging.offset, limit=paging.limit, status=status, id_prefix=id_prefix
    )
    return {
        "runners": [runner_to_api(r) for r in runners],
        "total": total,
        "page": paging.page,
        "limit": paging.limit,
        "nextCursor": None,
    }


@router.post("", response_model=RunnerWithSecret, status_code=201)
async def register_runner(body: NewRunner, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    """Register a runner: the answer holds `machineKey` and `machineSecret`, shown only this once."""
    return _with_credentials(await service.register_runner(hub.db, body, admin.actor, hub.licensing))


@router.get("/{runner_id}", response_model=RunnerAnswer)
async def get_runner(runner_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"runner": runner_to_api(await service.get_runner(hub.db, runner_id))}


@router.patch("/{runner_id}", response_model=RunnerAnswer)
async def update_runner(runner_id: str, body: RunnerPatch, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    return {"runner": runner_to_api(await service.update_runner(hub.db, runner_id, body, admin.actor))}


@router.delete("/{runner_id}", response_model=OkAnswer)
async def delete_runner(runner_id: str, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    await service.delete_runner(hub.db, runner_id, admin.actor)
    return {"ok": True}


@router.post("/{runner_id}/regenerate-secret", response_model=RunnerWithSecret)
async def regenerate_secret(runner_id: str, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    """A new secret; the old one and every runner session made with it stop working at once."""
    return _with_credentials(await service.regenerate_secret(hub.db, runner_id, admin.actor))


@router.get("/{runner_id}/metrics", response_model=RunnerMetricsAnswer)
async def runner_metrics(
    runner_id: str,
    user: CurrentUser,
    hub: HubDep,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 2000,
) -> dict[str, Any]:
    """Heartbeat metric history (default: the last 24 hours)."""
    rows = await service.metric_history(hub.db, runner_id, since, until, limit)
    return {"metrics": [metric_to_api(m) for m in rows]}
