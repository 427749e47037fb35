"""Prometheus exposition at `GET /metrics` (SPEC §11): queue mode, executions and runners by status, held
requests, the database pool, and the histograms and counters of `observability`."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import text
from starlette.responses import Response

from exekra.hub import observability
from exekra.hub.context import Hub
from exekra.hub.deps import bearer_token
from exekra.hub.errors import NotAuthenticated, NotFound

QUEUE_MODES = ("redis", "direct")

_COUNTS = text(
    "SELECT 'execution' AS kind, status, count(*) AS total FROM executions "
    "WHERE status IN ('QUEUED','ASSIGNED','RUNNING') GROUP BY status "
    "UNION ALL SELECT 'runner', status, count(*) FROM runners GROUP BY status"
)


class HubCollector(Collector):
    """Reads the figures when Prometheus scrapes; the live counts come from one small query."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.counts: list[tuple[str, str, int]] = []

    def collect(self) -> Iterator[Metric]:
        dispatcher = self.hub.dispatcher
        mode = GaugeMetricFamily("exekra_queue_mode", "1 for the active queue mode", labels=["mode"])
        for name in QUEUE_MODES:
            mode.add_metric([name], 1.0 if dispatcher.mode == name else 0.0)
        yield mode
        changes = CounterMetricFamily("exekra_queue_mode_changes", "Switches between redis and direct mode")
        changes.add_metric([], float(getattr(dispatcher, "mode_changes", 0)))
        yield changes
        executions = GaugeMetricFamily("exekra_executions", "Executions not yet finished, by status", labels=["status"])
        runners = GaugeMetricFamily("exekra_runners", "Runners by status", labels=["status"])
        for kind, status, count in self.counts:
            (executions if kind == "execution" else runners).add_metric([status], float(count))
        yield executions
        yield runners
        held = GaugeMetricFamily(
            "exekra_held_requests", "Requests held open in this hub process, by kind", labels=["kind"]
        )
        held.add_metric(["long_poll"], float(dispatcher.wakeups.held))
        held.add_metric(["execution_wait"], float(self.hub.executions.held_reads))
        held.add_metric(["log_stream"], float(self.hub.executions.followers.count))
        yield held
        pool = GaugeMetricFamily(
            "exekra_db_pool_connections", "This process's database connections, by state", labels=["state"]
        )
        # Both pools of the process: the ORM's and the hot path's driver pool (`Database.driver_pool`).
        sa_pool: Any = self.hub.db.engine.pool
        in_use, idle = sa_pool.checkedout(), sa_pool.checkedin()
        waiting = _waiting_in(getattr(sa_pool, "_pool", None))
        driver: Any = self.hub.db.driver_pool
        if driver is not None:
            in_use += driver.get_size() - driver.get_idle_size()
            idle += driver.get_idle_size()
            waiting += _waiting_in(driver)
        pool.add_metric(["in_use"], float(in_use))
        pool.add_metric(["idle"], float(idle))
        pool.add_metric(["waiting"], float(waiting))
        yield pool


def _waiting_in(pool: Any) -> int:
    """Coroutines waiting for a pooled connection: the getters of the pool's asyncio queue (SQLAlchemy's
    `AsyncAdaptedQueuePool` and asyncpg's pool both keep them there; 0 if a later version keeps them
    elsewhere)."""
    queue = getattr(pool, "_queue", None)
    return len(getattr(queue, "_getters", ()) or ())


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format; 404 with `EXEKRA_METRICS_ENABLED=false`, and with `EXEKRA_METRICS_TOKEN` set,
    401 without `Authorization: Bearer <that token>`."""
    hub: Hub = request.app.state.hub
    if not hub.settings.metrics_enabled:
        raise NotFound("Not Found")
    expected = hub.settings.metrics_token
    if expected and not hmac.compare_digest((bearer_token(request) or "").encode(), expected.encode()):
        raise NotAuthenticated("GET /metrics needs the bearer token of EXEKRA_METRICS_TOKEN")
    registry: CollectorRegistry | None = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry()
        request.app.state.metrics_collector = HubCollector(hub)
        registry.register(request.app.state.metrics_collector)
        request.app.state.metrics_registry = registry
    async with hub.db.session() as session:
        request.app.state.metrics_collector.counts = [
            (row.kind, row.status, int(row.total)) for row in await session.execute(_COUNTS)
        ]
    body = generate_latest(registry) + generate_latest(observability.REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
