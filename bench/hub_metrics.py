"""The hub's own histograms (`/metrics`), read twice and subtracted: what the hub saw between two moments."""

from __future__ import annotations

import math

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

_HEARTBEAT = {"method": "POST", "route": "/api/runner/heartbeat", "status": "2xx"}
# The two stages of a pick-up the hub times: QUEUED → ASSIGNED (in the hub), ASSIGNED → RUNNING (the poll's answer,
# the runner, its `start` call).
_STAGES = {"exekra_dispatch_latency_seconds_bucket": "dispatch", "exekra_pickup_latency_seconds_bucket": "start"}


async def hub_histograms(http: aiohttp.ClientSession, url: str) -> dict[tuple[str, str], float]:
    """The hub's own view (`/metrics`): the heartbeat route's latency buckets, the collector's pause buckets and the
    pick-up's stages, as {(series, upper bound): cumulative count}."""
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    buckets: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "exekra_http_request_duration_seconds_bucket" and all(
                sample.labels.get(k) == v for k, v in _HEARTBEAT.items()
            ):
                buckets[("heartbeat", sample.labels["le"])] = sample.value
            elif sample.name == "exekra_gc_pause_seconds_bucket":
                buckets[(f"gc{sample.labels['generation']}", sample.labels["le"])] = sample.value
            elif sample.name in _STAGES:
                buckets[(_STAGES[sample.name], sample.labels["le"])] = sample.value
    return buckets


def between(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], series: str
) -> dict[float, float]:
    """Cumulative counts by upper bound (s) of one series, observed between the two scrapes."""
    return {float(le): after[(name, le)] - before.get((name, le), 0.0) for name, le in after if name == series}


def bound_of(buckets: dict[float, float], share: float) -> float | None:
    """The upper bound (ms) of the bucket that holds the `share` quantile; None when nothing was observed (or the
    hub has no such histogram)."""
    total = buckets.get(math.inf, 0.0)
    for bound in sorted(buckets):
        if total and buckets[bound] >= share * total:
            return bound * 1000
    return None
