"""Artifacts: a runner uploads the files an execution attaches; users list and download them; they go with
the execution (purge, deletion)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from exekra.hub.artifacts.models import CHUNK_BYTES
from exekra.hub.context import Hub
from exekra.hub.retention import purge

from .conftest import SIMPLE_DEFINITION, OnlineRunner
from .protocol import ProtocolRunner, publish_workflow, running_execution

REPORT = bytes(range(256)) * (CHUNK_BYTES * 5 // 2 // 256)  # two and a half chunks


async def _running(admin: httpx.AsyncClient, online_runner: OnlineRunner) -> tuple[ProtocolRunner, str]:
    runner = await online_runner("r1")
    workflow_id = await publish_workflow(admin, "attach", SIMPLE_DEFINITION)
    return runner, await running_execution(admin, runner, workflow_id)


async def _count(hub: Hub, table: str) -> int:
    async with hub.db.session() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_an_uploaded_file_is_listed_and_downloaded_with_its_name_type_and_bytes(
    admin: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    r = await runner.upload(execution_id, 1, "rapport März.xlsx", REPORT, "application/vnd.ms-excel", node="report")
    assert r.status_code == 201, r.text
    stored = r.json()["artifact"]
    assert stored["name"] == "rapport M_rz.xlsx" and stored["size"] == len(REPORT) and stored["nodeId"] == "report"

    listed = (await admin.get(f"/api/executions/{execution_id}/artifacts")).json()
    assert [a["id"] for a in listed["artifacts"]] == [stored["id"]] and listed["totalBytes"] == len(REPORT)

    got = await admin.get(f"/api/executions/{execution_id}/artifacts/{stored['id']}")
    assert got.status_code == 200 and got.content == REPORT
    assert got.headers["content-type"] == "application/vnd.ms-excel"
    assert (
        got.headers["content-disposition"]
        == "attachment; filename=\"rapport M_rz.xlsx\"; filename*=UTF-8''rapport%20M_rz.xlsx"
    )


async def test_a_download_is_audited(admin: httpx.AsyncClient, online_runner: OnlineRunner) -> None:
    runner, execution_id = await _running(admin, online_runner)
    artifact = (await runner.upload(execution_id, 1, "shot.png", b"\x89PNG", "image/png")).json()["artifact"]
    await admin.get(f"/api/executions/{execution_id}/artifacts/{artifact['id']}")
    entries = (await admin.get("/api/audit", params={"action": "artifact.download"})).json()["entries"]
    assert [(e["entityId"], e["details"]["name"]) for e in entries] == [(artifact["id"], "shot.png")]


async def test_the_same_name_uploaded_again_by_the_attempt_replaces_the_first(
    admin: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    await runner.upload(execution_id, 1, "out.csv", b"a,b\n")
    await runner.upload(execution_id, 1, "out.csv", b"a,b\n1,2\n")
    listed = (await admin.get(f"/api/executions/{execution_id}/artifacts")).json()["artifacts"]
    assert [(a["name"], a["size"]) for a in listed] == [("out.csv", 8)]


async def test_an_upload_for_a_stale_attempt_or_an_ended_execution_is_refused_with_409(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    assert (await runner.upload(execution_id, 2, "a.txt", b"x")).status_code == 409
    assert (await runner.complete(execution_id, 1)).status_code == 200
    assert (await runner.upload(execution_id, 1, "a.txt", b"x")).status_code == 409
    assert await _count(hub, "execution_artifacts") == 0


async def test_another_runner_cannot_upload_to_an_execution_it_does_not_hold(
    admin: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    _, execution_id = await _running(admin, online_runner)
    other = await online_runner("r2")
    assert (await other.upload(execution_id, 1, "a.txt", b"x")).status_code == 409


async def test_uploads_past_the_file_or_execution_limit_answer_413_and_keep_nothing(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    monkeypatch.setattr(hub.settings, "artifact_max_bytes", 3000)
    monkeypatch.setattr(hub.settings, "artifact_execution_max_bytes", 5000)
    big = await runner.upload(execution_id, 1, "big.bin", b"x" * 3001)
    assert big.status_code == 413 and "per file" in big.json()["error"]["message"]
    assert (await runner.upload(execution_id, 1, "one.bin", b"x" * 3000)).status_code == 201
    over = await runner.upload(execution_id, 1, "two.bin", b"x" * 2001)
    assert over.status_code == 413 and "limit of 5000" in over.json()["error"]["message"]
    assert (await runner.upload(execution_id, 1, "two.bin", b"x" * 2000)).status_code == 201
    listed = (await admin.get(f"/api/executions/{execution_id}/artifacts")).json()
    assert listed["totalBytes"] == 5000


async def test_a_body_past_the_file_limit_is_refused_before_it_is_read(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    """The JSON body limit (1 MiB) does not apply to uploads; `EXEKRA_ARTIFACT_MAX_BYTES` does."""
    runner, execution_id = await _running(admin, online_runner)
    assert (await runner.upload(execution_id, 1, "two-mib.bin", b"x" * (2 * 1024 * 1024))).status_code == 201
    limit = hub.settings.artifact_max_bytes
    r = await runner.upload(execution_id, 1, "huge.bin", b"x" * (limit + 1))
    assert r.status_code == 413 and str(limit) in r.json()["error"]["message"]


async def test_listing_needs_a_signed_in_user_and_an_existing_execution(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    artifact = (await runner.upload(execution_id, 1, "a.txt", b"x")).json()["artifact"]
    assert (await client.get(f"/api/executions/{execution_id}/artifacts")).status_code == 401
    assert (await client.get(f"/api/executions/{execution_id}/artifacts/{artifact['id']}")).status_code == 401
    assert (await admin.get(f"/api/executions/{uuid.uuid4()}/artifacts")).status_code == 404
    assert (await admin.get(f"/api/executions/{uuid.uuid4()}/artifacts/{artifact['id']}")).status_code == 404
    assert (await admin.get(f"/api/executions/{execution_id}/artifacts/{uuid.uuid4()}")).status_code == 404


async def test_the_execution_page_lists_its_files_with_download_links_and_its_polls_refresh_them(
    admin: httpx.AsyncClient, online_runner: OnlineRunner
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    artifact = (await runner.upload(execution_id, 1, "screen.png", b"\x89PNG" * 512, "image/png")).json()["artifact"]
    page = (await admin.get(f"/executions/{execution_id}")).text
    assert f'href="/api/executions/{execution_id}/artifacts/{artifact["id"]}"' in page
    assert "screen.png" in page and "2.0 KiB" in page
    live = (await admin.get(f"/executions/{execution_id}/live", params={"after": 0, "state": "before"})).text
    assert 'id="execution-artifacts" hx-swap-oob="true"' in live and "screen.png" in live  # a poll brings new files


async def test_purge_deletes_an_old_execution_with_its_files(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    await runner.upload(execution_id, 1, "report.bin", REPORT)
    assert (await runner.complete(execution_id, 1)).status_code == 200
    async with hub.db.transaction() as session:
        await session.execute(
            text("UPDATE executions SET completed_at = now() - interval '40 days' WHERE id = :id"),
            {"id": uuid.UUID(execution_id)},
        )
    report = await purge(hub.db, retention_days=30, metrics_retention_days=7, batch=10)
    assert report.executions == 1 and report.artifacts == 1
    assert await _count(hub, "execution_artifacts") == 0 and await _count(hub, "execution_artifact_chunks") == 0


async def test_deleting_an_execution_deletes_its_files(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub
) -> None:
    runner, execution_id = await _running(admin, online_runner)
    await runner.upload(execution_id, 1, "report.bin", REPORT)
    assert await _count(hub, "execution_artifact_chunks") == 3
    async with hub.db.transaction() as session:
        await session.execute(text("DELETE FROM executions WHERE id = :id"), {"id": uuid.UUID(execution_id)})
    assert await _count(hub, "execution_artifacts") == 0 and await _count(hub, "execution_artifact_chunks") == 0


async def test_with_an_artifact_dir_the_bytes_are_a_file_that_the_purge_removes_with_its_execution(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hub.settings, "artifact_dir", tmp_path)
    runner, execution_id = await _running(admin, online_runner)
    stored = (await runner.upload(execution_id, 1, "report.bin", REPORT)).json()["artifact"]
    assert (tmp_path / execution_id / stored["id"]).read_bytes() == REPORT
    assert await _count(hub, "execution_artifact_chunks") == 0
    got = await admin.get(f"/api/executions/{execution_id}/artifacts/{stored['id']}")
    assert got.status_code == 200 and got.content == REPORT

    assert (await runner.complete(execution_id, 1)).status_code == 200
    async with hub.db.transaction() as session:
        await session.execute(
            text("UPDATE executions SET completed_at = now() - interval '40 days' WHERE id = :id"),
            {"id": uuid.UUID(execution_id)},
        )
    report = await purge(hub.db, retention_days=30, metrics_retention_days=7, batch=10, artifact_dir=tmp_path)
    assert report.artifacts == 1 and not (tmp_path / execution_id).exists()


async def test_with_an_artifact_dir_a_refused_upload_leaves_no_file(
    admin: httpx.AsyncClient, online_runner: OnlineRunner, hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(hub.settings, "artifact_dir", tmp_path)
    runner, execution_id = await _running(admin, online_runner)
    short = await runner.http.post(
        f"/api/runner/executions/{execution_id}/artifacts",
        params={"attempt": 1, "name": "short.bin"},
        content=_streamed(b"x" * 10),
        headers={**runner.headers, "Content-Length": "100"},
    )
    assert short.status_code == 400 and "were declared" in short.json()["error"]["message"]
    assert await _count(hub, "execution_artifacts") == 0
    assert list((tmp_path / execution_id).iterdir()) == []


async def _streamed(data: bytes) -> AsyncIterator[bytes]:
    """A body sent as a stream, so that its `Content-Length` may claim more than it holds."""
    yield data
