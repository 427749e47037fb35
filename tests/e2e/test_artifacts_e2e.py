"""Real hub + real `exekra runner`: the files a workflow attaches reach the hub during the run and stay there."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .conftest import RunnerProcess, logs, publish, run_and_wait


def test_attached_files_are_uploaded_by_the_runner_and_downloadable_after_the_run(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    runner = start_runner()
    definition = {
        "nodes": [
            {"id": "write", "activity": "file.write", "params": {"path": "out/report.csv", "content": "a,b\n1,2\n"}},
            {"id": "attach", "activity": "file.attach", "params": {"path": "out/report.csv"}},
            {
                "id": "big",
                "activity": "python.run",
                "params": {"script": "open('blob.bin', 'wb').write(bytes(range(256)) * 12288)\nresult = {}"},
            },
            {"id": "attach_big", "activity": "file.attach", "params": {"path": "blob.bin", "name": "blob.bin"}},
        ],
        "edges": [
            {"from": "write", "to": "attach"},
            {"from": "attach", "to": "big"},
            {"from": "big", "to": "attach_big"},
        ],
    }
    execution = run_and_wait(api, publish(api, definition, labels=[runner.name]))
    assert execution["status"] == "COMPLETED", (execution, logs(api, execution["id"]))

    listed = api.get(f"/api/executions/{execution['id']}/artifacts").json()["artifacts"]
    by_name = {a["name"]: a for a in listed}
    assert set(by_name) == {"report.csv", "blob.bin"}
    assert by_name["report.csv"]["contentType"] == "text/csv" and by_name["report.csv"]["nodeId"] == "attach"
    report = api.get(f"/api/executions/{execution['id']}/artifacts/{by_name['report.csv']['id']}")
    assert report.content == b"a,b\n1,2\n"
    assert report.headers["content-disposition"].startswith('attachment; filename="report.csv"')
    blob = api.get(f"/api/executions/{execution['id']}/artifacts/{by_name['blob.bin']['id']}")
    assert blob.content == bytes(range(256)) * 12288  # 3 MiB: past the JSON body limit, in several chunks


def test_a_file_past_the_hubs_limit_is_not_kept_the_log_says_why_and_the_run_completes(
    api: httpx.Client, start_runner: Callable[..., RunnerProcess]
) -> None:
    """The hub stores 50 MiB per file by default (`EXEKRA_ARTIFACT_MAX_BYTES`); the runner keeps 100 MiB."""
    runner = start_runner()
    script = "with open('huge.bin', 'wb') as f:\n    f.truncate(51 * 1024 * 1024)\nresult = {}"
    definition = {
        "nodes": [
            {"id": "make", "activity": "python.run", "params": {"script": script}},
            {"id": "attach", "activity": "file.attach", "params": {"path": "huge.bin"}},
            {"id": "small", "activity": "file.write", "params": {"path": "small.txt", "content": "ok"}},
            {"id": "attach_small", "activity": "file.attach", "params": {"path": "small.txt"}},
        ],
        "edges": [
            {"from": "make", "to": "attach"},
            {"from": "attach", "to": "small"},
            {"from": "small", "to": "attach_small"},
        ],
    }
    execution = run_and_wait(api, publish(api, definition, labels=[runner.name]))
    assert execution["status"] == "COMPLETED", (execution, logs(api, execution["id"]))
    listed = api.get(f"/api/executions/{execution['id']}/artifacts").json()["artifacts"]
    assert [a["name"] for a in listed] == ["small.txt"]
    assert any("artifact huge.bin refused by the hub: 413" in line for line in logs(api, execution["id"]))
