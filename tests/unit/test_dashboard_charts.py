"""The overview's throughput chart (issue 13, item 14): the success-rate line stays visible with one hour of data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exekra.hub.dashboard.charts import throughput
from exekra.hub.stats.service import Bucket, HistorySize, RunnerCounts, Stats

NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)


def _stats(buckets: list[Bucket]) -> Stats:
    return Stats(
        generated_at=NOW,
        queue_mode="direct",
        queue_depth=0,
        oldest_queued_at=None,
        by_status={},
        window=timedelta(hours=24),
        bucket=timedelta(hours=1),
        buckets=buckets,
        runners=RunnerCounts(),
        history=HistorySize(4, estimated=False),
    )


def _hours(data: dict[int, Bucket]) -> list[Bucket]:
    start = NOW.replace(minute=0) - timedelta(hours=23)
    return [data.get(i, Bucket(start + timedelta(hours=i))) for i in range(24)]


def _radius(dataset: dict[str, object], index: int) -> float:
    radius = dataset["pointRadius"]
    return float(radius[index] if isinstance(radius, list) else radius)  # type: ignore[arg-type]


def test_one_hour_of_data_draws_the_success_rate_point_visibly_above_the_bars() -> None:
    last = NOW.replace(minute=0)
    config = throughput(_stats(_hours({23: Bucket(last, completed=3, failed=1)})))
    *bars, line = config["data"]["datasets"]
    assert line["type"] == "line" and line["data"][23] == 75.0
    # Chart.js draws a lower `order` over a higher one: the line must not hide behind the bar it sits on.
    assert all(line["order"] < bar["order"] for bar in bars)
    # A lone value has no neighbour to draw a segment to: its point alone must show.
    assert _radius(line, 23) >= 3


def test_values_with_neighbours_keep_small_points() -> None:
    start = NOW.replace(minute=0) - timedelta(hours=23)
    config = throughput(_stats(_hours({i: Bucket(start + timedelta(hours=i), completed=1) for i in (20, 21, 22, 23)})))
    line = config["data"]["datasets"][-1]
    assert [_radius(line, i) for i in (20, 21, 22, 23)] == [2, 2, 2, 2]
