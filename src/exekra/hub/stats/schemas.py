"""The API shape of the statistics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exekra.hub.schemas import ApiAnswer
from exekra.hub.stats.service import Stats


class QueueStats(ApiAnswer):
    mode: str
    depth: int
    oldest_queued_at: datetime | None


class ExecutionStats(ApiAnswer):
    """Live statuses count now; finished ones count inside the window. `total`: the whole history."""

    by_status: dict[str, int]
    window_hours: float
    total: int
    total_is_estimate: bool


class RunnerStats(ApiAnswer):
    online: int
    busy: int
    offline: int
    disabled: int
    total: int
    utilisation: float | None


class ThroughputBucket(ApiAnswer):
    start: datetime
    completed: int
    failed: int
    stopped: int
    success_rate: float | None


class ThroughputStats(ApiAnswer):
    bucket_minutes: float
    finished: int
    success_rate: float | None
    buckets: list[ThroughputBucket]


class StatsOut(ApiAnswer):
    generated_at: datetime
    queue: QueueStats
    executions: ExecutionStats
    runners: RunnerStats
    throughput: ThroughputStats


class StatsAnswer(ApiAnswer):
    stats: StatsOut


def stats_to_api(stats: Stats) -> dict[str, Any]:
    runners = stats.runners
    return {
        "generatedAt": stats.generated_at,
        "queue": {
            "mode": stats.queue_mode,
            "depth": stats.queue_depth,
            "oldestQueuedAt": stats.oldest_queued_at,
        },
        "executions": {
            "byStatus": stats.by_status,
            "windowHours": stats.window.total_seconds() / 3600,
            "total": stats.history.count,
            "totalIsEstimate": stats.history.estimated,
        },
        "runners": {
            "online": runners.online,
            "busy": runners.busy,
            "offline": runners.offline,
            "disabled": runners.disabled,
            "total": runners.total,
            "utilisation": runners.utilisation,
        },
        "throughput": {
            "bucketMinutes": stats.bucket.total_seconds() / 60,
            "finished": stats.window_total.finished,
            "successRate": stats.window_total.success_rate,
            "buckets": [
                {
                    "start": b.start,
                    "completed": b.completed,
                    "failed": b.failed,
                    "stopped": b.stopped,
                    "successRate": b.success_rate,
                }
                for b in stats.buckets
            ],
        },
    }
