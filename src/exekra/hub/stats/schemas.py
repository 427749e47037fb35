"""The API shape of the statistics."""

from __future__ import annotations

from typing import Any

from exekra.hub.stats.service import Stats


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
