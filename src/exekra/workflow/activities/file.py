"""`file.*`: read, write, copy, move, delete and list files; relative paths are under the workdir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from exekra.workflow.activities.context import ActivityContext, os_errors, param
from exekra.workflow.errors import ActivityError


@os_errors
def read(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Read the text file `path` (`encoding`, default utf-8); outputs `content`."""
    path = ctx.path(param(params, "path", str))
    return {"content": path.read_text(encoding=param(params, "encoding", str, "utf-8"))}


@os_errors
def write(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Write `content` to `path`, creating folders; `append` adds to the end. Outputs `path`, `bytes`.

    A `content` that is not a string (an object from an expression) is written as JSON.
    """
    path = ctx.path(param(params, "path", str))
    content = params.get("content", "")
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    data = text.encode(param(params, "encoding", str, "utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab" if param(params, "append", bool, False) else "wb") as handle:
        handle.write(data)
    return {"path": str(path), "bytes": len(data)}


def _source_and_destination(ctx: ActivityContext, params: dict[str, Any]) -> tuple[Path, Path]:
    source = ctx.path(param(params, "source", str))
    destination = ctx.path(param(params, "destination", str))
    if not source.exists():
        raise ActivityError(f"{source} does not exist")
    destination.parent.mkdir(parents=True, exist_ok=True)
    return source, destination


@os_errors
def copy(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Copy `source` (a file or a folder) to `destination`, into it when it is a folder; outputs `path`."""
    source, destination = _source_and_destination(ctx, params)
    target = destination / source.name if destination.is_dir() else destination
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return {"path": str(target)}


@os_errors
def move(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Move `source` to `destination`, into it when it is a folder; outputs `path`."""
    source, destination = _source_and_destination(ctx, params)
    return {"path": str(shutil.move(source, destination))}


@os_errors
def delete(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """Delete the file `path`, or the folder with `recursive`; outputs `deleted` (false if it was absent)."""
    path = ctx.path(param(params, "path", str))
    if not path.exists() and not path.is_symlink():
        return {"deleted": False}
    if path.is_dir() and not path.is_symlink():
        if param(params, "recursive", bool, False):
            shutil.rmtree(path)
        else:
            path.rmdir()
    else:
        path.unlink()
    return {"deleted": True}


@os_errors
def list_files(ctx: ActivityContext, params: dict[str, Any]) -> dict[str, Any]:
    """List the files in folder `path` (default: the workdir) matching glob `pattern` (default `*`).

    With `recursive`, sub-folders are searched too. Outputs `files`: sorted absolute paths.
    """
    folder = ctx.path(param(params, "path", str, "."))
    if not folder.is_dir():
        raise ActivityError(f"{folder} is not a folder")
    pattern = param(params, "pattern", str, "*")
    matches = folder.rglob(pattern) if param(params, "recursive", bool, False) else folder.glob(pattern)
    return {"files": sorted(str(match) for match in matches if match.is_file())}
