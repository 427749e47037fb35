"""A real `exekra hub` process follows the hub's garbage-collector policy (`exekra.hub.collector`): its collections'
pauses reach `/metrics` from the event loop."""

from __future__ import annotations

import httpx

from tests.integration.protocol import sample

from .conftest import HubProcess, wait_until


def test_the_hub_process_reports_its_garbage_collections(hub_process: HubProcess, api: httpx.Client) -> None:
    def young_collections() -> float:
        for _ in range(50):  # requests allocate: young collections follow
            assert api.get("/api/executions", params={"limit": 50}).status_code == 200
        return sample(
            httpx.get(f"{hub_process.url}/metrics", timeout=5).text, "exekra_gc_pause_seconds_count", generation="0"
        )

    seen = wait_until(young_collections, 30, interval=0.2, what="a young collection in exekra_gc_pause_seconds")
    assert seen >= 1
