"""Routes: `GET /api/stats`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from exekra.hub.deps import CurrentUser, HubDep
from exekra.hub.errors import ValidationFailed
from exekra.hub.stats import service
from exekra.hub.stats.schemas import StatsAnswer, stats_to_api

router = APIRouter(prefix="/api/stats", tags=["stats"])


@router.get("", response_model=StatsAnswer)
async def get_stats(
    user: CurrentUser,
    hub: HubDep,
    hours: Annotated[int, Query(ge=1, le=168, description="the throughput window")] = 24,
    bucket_minutes: Annotated[int | None, Query(alias="bucketMinutes", ge=1, le=1440)] = None,
) -> dict[str, Any]:
    """Executions by status, queue depth and mode, runner utilisation, throughput and success rate per bucket.

    Live statuses (QUEUED, ASSIGNED, RUNNING) count executions now; finished ones count executions that
    finished inside the window. `total` is exact up to 10,000 executions, PostgreSQL's estimate above.
    """
    window = timedelta(hours=hours)
    bucket = timedelta(minutes=bucket_minutes) if bucket_minutes else service.default_bucket(window)
    if window / bucket > service.MAX_BUCKETS:
        raise ValidationFailed(f"query.bucketMinutes: at most {service.MAX_BUCKETS} buckets per window")
    stats = await service.collect_stats(hub.db, queue_mode=hub.dispatcher.mode, window=window, bucket=bucket)
    return {"stats": stats_to_api(stats)}
