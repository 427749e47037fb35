"""The scenarios, by name, in the order `python -m bench` runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.scenarios.base import Context, Result
from bench.scenarios.connected import run as connected
from bench.scenarios.endpoints import run as endpoints
from bench.scenarios.history import run as history
from bench.scenarios.pickup import run as pickup
from bench.scenarios.pickup_load import run as pickup_load
from bench.scenarios.procrastinate import run as procrastinate
from bench.scenarios.redis_down import run as redis_down
from bench.scenarios.sequential import run as sequential
from bench.scenarios.throughput import run as throughput

SCENARIOS: dict[str, Callable[[Context], Awaitable[Result]]] = {
    "pickup": pickup,
    "sequential": sequential,
    "throughput": throughput,
    "pickup-load": pickup_load,
    "procrastinate": procrastinate,
    "endpoints": endpoints,
    "connected": connected,
    "history": history,
    "redis-down": redis_down,
}

__all__ = ["SCENARIOS", "Context", "Result"]
