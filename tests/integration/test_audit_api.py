"""GET /api/audit: mutating actions are listed newest first and can be filtered."""

from __future__ import annotations

import httpx


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
