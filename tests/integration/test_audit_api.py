"""GET /api/audit: mutating actions are listed newest first and can be filtered."""

from __future__ import annotations

import httpx

from exekra.hub.audit import service
from exekra.hub.context import Hub

from .conftest import fill_audit


async def test_audit_lists_actions_newest_first_with_filters(admin: httpx.AsyncClient) -> None:
    me = (await admin.get("/api/auth/me")).json()["user"]
    runner = (await admin.post("/api/runners", json={"name": "audited"})).json()["runner"]
    await admin.patch(f"/api/runners/{runner['id']}", json={"labels": ["x"]})

    everything = (await admin.get("/api/audit")).json()
    actions = [e["action"] for e in everything["entries"]]
    assert actions.index("runner.update") < actions.index("runner.register")  # newest first
    assert everything["total"] == len(everything["entries"])

    filtered = (await admin.get("/api/audit", params={"entityType": "runner", "entityId": runner["id"]})).json()
    assert [e["action"] for e in filtered["entries"]] == ["runner.update", "runner.register"]
    entry = filtered["entries"][0]
    assert entry["actorType"] == "USER" and entry["actorId"] == me["id"] and entry["details"] == {"labels": ["x"]}

    by_action = (await admin.get("/api/audit", params={"action": "runner.register", "limit": 1})).json()
    assert by_action["total"] == 1 and by_action["limit"] == 1
    assert (await admin.get("/api/audit", params={"actor": "nobody"})).json()["entries"] == []


async def test_keyset_pages_walk_the_log_newest_first_without_gaps(admin: httpx.AsyncClient, hub: Hub) -> None:
    await fill_audit(hub, 7)
    seen: list[str] = []
    cursor = ""
    pages = 0
    while cursor is not None:
        page = (await admin.get("/api/audit", params={"action": "test.fill", "limit": 3, "cursor": cursor})).json()
        assert page["total"] == 7 and page["totalCapped"] is False
        seen += [e["entityId"] for e in page["entries"]]
        cursor = page["nextCursor"]
        pages += 1
    assert pages == 3
    assert seen == [f"t{n}" for n in range(7, 0, -1)]


async def test_keyset_counts_stop_at_the_cap(admin: httpx.AsyncClient, hub: Hub) -> None:
    await fill_audit(hub, service.COUNT_CAP + 5)
    page = (await admin.get("/api/audit", params={"action": "test.fill", "cursor": ""})).json()
    assert page["total"] == service.COUNT_CAP and page["totalCapped"] is True
    assert page["nextCursor"] == page["entries"][-1]["id"]


async def test_a_cursor_that_is_not_one_is_a_400(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/api/audit", params={"cursor": "abc"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
