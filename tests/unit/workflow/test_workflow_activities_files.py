"""`file.*`, `json.parse` and `csv.read|write`."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_support import ActivityCall

from exekra.workflow.activities import data, file
from exekra.workflow.errors import ActivityError


def test_write_creates_folders_and_read_reads_back(call: ActivityCall) -> None:
    written = file.write(call.ctx, {"path": "out/page.html", "content": "héllo"})

    assert written == {"path": str(call.ctx.workdir / "out/page.html"), "bytes": 6}
    assert file.read(call.ctx, {"path": "out/page.html"}) == {"content": "héllo"}


def test_write_appends_and_writes_non_strings_as_json(call: ActivityCall) -> None:
    file.write(call.ctx, {"path": "log.txt", "content": "a"})
    file.write(call.ctx, {"path": "log.txt", "content": "b", "append": True})
    file.write(call.ctx, {"path": "data.json", "content": {"k": [1]}})

    assert (call.ctx.workdir / "log.txt").read_text() == "ab"
    assert (call.ctx.workdir / "data.json").read_text() == '{\n  "k": [\n    1\n  ]\n}'


def test_absolute_paths_are_used_as_given(call: ActivityCall, tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path_factory.mktemp("elsewhere") / "x.txt"
    file.write(call.ctx, {"path": str(target), "content": "x"})
    assert target.read_text() == "x"


def test_read_missing_file_fails_with_the_os_message(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^\[Errno 2\] No such file or directory: .*nope.txt'$"):
        file.read(call.ctx, {"path": "nope.txt"})


def test_copy_file_into_folder_and_folder_to_folder(call: ActivityCall) -> None:
    workdir = call.ctx.workdir
    (workdir / "src").mkdir()
    (workdir / "src/a.txt").write_text("a")
    (workdir / "dest").mkdir()

    assert file.copy(call.ctx, {"source": "src/a.txt", "destination": "dest"}) == {"path": str(workdir / "dest/a.txt")}
    assert file.copy(call.ctx, {"source": "src", "destination": "backup/src"}) == {"path": str(workdir / "backup/src")}
    assert (workdir / "dest/a.txt").read_text() == (workdir / "backup/src/a.txt").read_text() == "a"


def test_move(call: ActivityCall) -> None:
    (call.ctx.workdir / "a.txt").write_text("a")

    assert file.move(call.ctx, {"source": "a.txt", "destination": "moved/b.txt"}) == {
        "path": str(call.ctx.workdir / "moved/b.txt")
    }
    assert not (call.ctx.workdir / "a.txt").exists()


def test_copy_missing_source_fails(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"nope does not exist$"):
        file.copy(call.ctx, {"source": "nope", "destination": "x"})


def test_delete_file_missing_and_folders(call: ActivityCall) -> None:
    workdir = call.ctx.workdir
    (workdir / "a.txt").write_text("a")
    (workdir / "full").mkdir()
    (workdir / "full/x").write_text("x")

    assert file.delete(call.ctx, {"path": "a.txt"}) == {"deleted": True}
    assert file.delete(call.ctx, {"path": "a.txt"}) == {"deleted": False}
    with pytest.raises(ActivityError, match=r"Directory not empty"):
        file.delete(call.ctx, {"path": "full"})
    assert file.delete(call.ctx, {"path": "full", "recursive": True}) == {"deleted": True}
    assert not (workdir / "full").exists()


def test_list_with_pattern_and_recursion(call: ActivityCall) -> None:
    workdir: Path = call.ctx.workdir
    for name in ("b.csv", "a.csv", "c.txt", "sub/d.csv"):
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text("")

    assert file.list_files(call.ctx, {"pattern": "*.csv"}) == {
        "files": [str(workdir / "a.csv"), str(workdir / "b.csv")]
    }
    assert file.list_files(call.ctx, {"path": ".", "pattern": "*.csv", "recursive": True})["files"][-1] == str(
        workdir / "sub/d.csv"
    )
    with pytest.raises(ActivityError, match=r"is not a folder$"):
        file.list_files(call.ctx, {"path": "a.csv"})


def test_json_parse(call: ActivityCall) -> None:
    assert data.json_parse(call.ctx, {"text": '{"a": [1, true, null]}'}) == {"value": {"a": [1, True, None]}}
    with pytest.raises(ActivityError, match=r"^invalid JSON: Expecting value: line 1 column 1"):
        data.json_parse(call.ctx, {"text": "nope"})


def test_csv_read_with_and_without_header(call: ActivityCall) -> None:
    (call.ctx.workdir / "people.csv").write_text("\ufeffname;age\nAda;36\n", encoding="utf-8")

    assert data.csv_read(call.ctx, {"path": "people.csv", "delimiter": ";"}) == {"rows": [{"name": "Ada", "age": "36"}]}
    assert data.csv_read(call.ctx, {"text": "a,b\n1,2\n", "header": False}) == {"rows": [["a", "b"], ["1", "2"]]}


def test_csv_write_objects_and_lists(call: ActivityCall) -> None:
    rows = [{"name": "Ada", "age": 36}, {"name": "Bob", "city": "Oslo"}]
    assert data.csv_write(call.ctx, {"path": "out/people.csv", "rows": rows}) == {
        "path": str(call.ctx.workdir / "out/people.csv"),
        "count": 2,
    }
    assert (call.ctx.workdir / "out/people.csv").read_bytes() == b"name,age,city\r\nAda,36,\r\nBob,,Oslo\r\n"

    data.csv_write(call.ctx, {"path": "plain.csv", "rows": [[1, "a,b"]], "columns": ["n", "text"]})
    assert data.csv_read(call.ctx, {"path": "plain.csv"}) == {"rows": [{"n": "1", "text": "a,b"}]}


def test_csv_write_refuses_mixed_rows(call: ActivityCall) -> None:
    with pytest.raises(ActivityError, match=r"^param 'rows' must be a list of objects or a list of lists$"):
        data.csv_write(call.ctx, {"path": "x.csv", "rows": [{"a": 1}, [1]]})
