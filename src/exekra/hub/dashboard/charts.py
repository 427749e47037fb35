"""Chart.js configurations built on the server: the browser only draws them (`static/dashboard.js`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from exekra.hub.dashboard.formatting import bucket_label
from exekra.hub.runners.service import MetricBucket
from exekra.hub.stats.service import RunnerCounts, Stats

GREEN, RED, AMBER, BLUE, GREY, VIOLET = "#1f9d55", "#d64545", "#d99a1e", "#2f6fdf", "#9aa5b1", "#7a5af8"
LONE_POINT_RADIUS = 5


def throughput(stats: Stats) -> dict[str, Any]:
    """Finished executions per bucket (stacked by outcome) and the success rate as a line."""
    labels = [bucket_label(b.start, stats.bucket) for b in stats.buckets]
    rates = [None if b.success_rate is None else round(b.success_rate * 100, 1) for b in stats.buckets]
    # The line joins the known rates across empty buckets (spanGaps); a single one has nothing to join, and a
    # point of radius 2 on top of its bar is all but invisible (one hour of data in a 24-hour chart).
    lone = sum(rate is not None for rate in rates) == 1
    return {
        "type": "bar",
        "data": {
            "labels": labels,
            "datasets": [
                _bars("Completed", [b.completed for b in stats.buckets], GREEN),
                _bars("Failed", [b.failed for b in stats.buckets], RED),
                _bars("Stopped", [b.stopped for b in stats.buckets], AMBER),
                {
                    "type": "line",
                    "label": "Success rate %",
                    "data": rates,
                    "borderColor": BLUE,
                    "backgroundColor": BLUE,
                    "yAxisID": "rate",
                    "spanGaps": True,
                    "tension": 0.2,
                    "pointRadius": [LONE_POINT_RADIUS if lone and rate is not None else 2 for rate in rates],
                    "order": 0,  # Chart.js draws a lower order on top: the line over the bars
                },
            ],
        },
        "options": {
            "animation": False,
            "maintainAspectRatio": False,
            "interaction": {"mode": "index", "intersect": False},
            "scales": {
                "x": {"stacked": True},
                "y": {
                    "stacked": True,
                    "beginAtZero": True,
                    "ticks": {"precision": 0},
                    "title": {"display": True, "text": "executions"},
                },
                "rate": {
                    "position": "right",
                    "min": 0,
                    "max": 100,
                    "grid": {"drawOnChartArea": False},
                    "title": {"display": True, "text": "success %"},
                },
            },
        },
    }


def _bars(label: str, data: list[int], color: str) -> dict[str, Any]:
    return {"label": label, "data": data, "backgroundColor": color, "stack": "outcome", "yAxisID": "y", "order": 1}


def runner_utilisation(runners: RunnerCounts) -> dict[str, Any]:
    return {
        "type": "doughnut",
        "data": {
            "labels": ["Busy", "Online (idle)", "Offline"],
            "datasets": [
                {
                    "data": [runners.busy, runners.online, runners.offline],
                    "backgroundColor": [BLUE, GREEN, GREY],
                }
            ],
        },
        "options": {"animation": False, "maintainAspectRatio": False, "plugins": {"legend": {"position": "bottom"}}},
    }


def runner_metrics(buckets: Sequence[MetricBucket], window: timedelta) -> dict[str, Any]:
    """CPU (average and peak), memory and disk use over `window`, one point per bucket of heartbeats."""
    labels = [bucket_label(b.start, window) for b in buckets]

    def line(label: str, values: list[float | None], color: str, **extra: Any) -> dict[str, Any]:
        rounded = [None if v is None else round(v, 1) for v in values]
        return {
            "label": label,
            "data": rounded,
            "borderColor": color,
            "backgroundColor": color,
            "pointRadius": 0,
            **extra,
        }

    return {
        "type": "line",
        "data": {
            "labels": labels,
            "datasets": [
                line("CPU %", [b.cpu_percent for b in buckets], BLUE),
                line("CPU peak %", [b.cpu_peak for b in buckets], BLUE, borderDash=[4, 3], borderWidth=1),
                line("Memory %", [b.memory_percent for b in buckets], VIOLET),
                line("Disk %", [b.disk_percent for b in buckets], AMBER),
            ],
        },
        "options": {
            "animation": False,
            "maintainAspectRatio": False,
            "spanGaps": False,
            "interaction": {"mode": "index", "intersect": False},
            "scales": {"y": {"min": 0, "suggestedMax": 100, "title": {"display": True, "text": "%"}}},
        },
    }
