"""`file.*`: read, write, copy, move, delete, list and attach files; relative paths are under the workdir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from exekra.workflow.activities.context import ActivityContext, os_errors
from exekra.workflow.activities.spec import Params, activity
from exekra.workflow.errors import ActivityError

CATEGORY = "Files"


class ReadParams(Params):
    path: str
    """The text file to read."""
    encoding: str = "utf-8"
    """Its text encoding."""


class ReadOutputs(Params):
    content: str
    """The file's text."""


@activity("file.read", category=CATEGORY, params=ReadParams, outputs=ReadOutputs)
@os_errors
def read(ctx: ActivityContext, params: ReadParams) -> dict[str, Any]:
    """Read the text file `path`."""
    return {"content": ctx.path(params.path).read_text(encoding=params.encoding)}


class WriteParams(Params):
    path: str
    """The file to write; folders are created."""
    content: Any = ""
    """The text to write; any other value (an object from an expression) is written as JSON."""
    encoding: str = "utf-8"
    """The text encoding."""
    append: bool = False
    """Add to the end of the file instead of replacing it."""


class WriteOutputs(Params):
    path: str
    """The absolute path written."""
    bytes: int
    """Bytes written."""


@activity("file.write", category=CATEGORY, params=WriteParams, outputs=WriteOutputs)
@os_errors
def write(ctx: ActivityContext, params: WriteParams) -> dict[str, Any]:
    """Write `content` to the file `path`."""
    path = ctx.path(params.path)
    content = params.content
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    data = text.encode(params.encoding)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab" if params.append else "wb") as handle:
        handle.write(data)
    return {"path": str(path), "bytes": len(data)}


class TransferParams(Params):
    source: str
    """The file or folder to copy or move."""
    destination: str
    """Where to: a new path, or an existing folder to put it into."""


class PathOutputs(Params):
    path: str
    """The resulting absolute path."""


def _source_and_destination(ctx: ActivityContext, params: TransferParams) -> tuple[Path, Path]:
    source, destination = ctx.path(params.source), ctx.path(params.destination)
    if not source.exists():
        raise ActivityError(f"{source} does not exist")
    destination.parent.mkdir(parents=True, exist_ok=True)
    return source, destination


@activity("file.copy", category=CATEGORY, params=TransferParams, outputs=PathOutputs)
@os_errors
def copy(ctx: ActivityContext, params: TransferParams) -> dict[str, Any]:
    """Copy `source` (a file or a folder) to `destination`, into it when it is a folder."""
    source, destination = _source_and_destination(ctx, params)
    target = destination / source.name if destination.is_dir() else destination
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return {"path": str(target)}


@activity("file.move", category=CATEGORY, params=TransferParams, outputs=PathOutputs)
@os_errors
def move(ctx: ActivityContext, params: TransferParams) -> dict[str, Any]:
    """Move `source` to `destination`, into it when it is a folder."""
    source, destination = _source_and_destination(ctx, params)
    return {"path": str(shutil.move(source, destination))}


class DeleteParams(Params):
    path: str
    """The file or folder to delete."""
    recursive: bool = False
    """Delete a folder with everything in it (else only an empty folder)."""


class DeleteOutputs(Params):
    deleted: bool
    """False when there was nothing to delete."""


@activity("file.delete", category=CATEGORY, params=DeleteParams, outputs=DeleteOutputs)
@os_errors
def delete(ctx: ActivityContext, params: DeleteParams) -> dict[str, Any]:
    """Delete the file `path`, or the folder with `recursive`."""
    path = ctx.path(params.path)
    if not path.exists() and not path.is_symlink():
        return {"deleted": False}
    if path.is_dir() and not path.is_symlink():
        if params.recursive:
            shutil.rmtree(path)
        else:
            path.rmdir()
    else:
        path.unlink()
    return {"deleted": True}


class ListParams(Params):
    path: str = "."
    """The folder to list (default: the workdir)."""
    pattern: str = "*"
    """A glob pattern, such as `*.pdf`."""
    recursive: bool = False
    """Search sub-folders too."""


class ListOutputs(Params):
    files: list[str]
    """Matching files: sorted absolute paths."""


@activity("file.list", category=CATEGORY, params=ListParams, outputs=ListOutputs)
@os_errors
def list_files(ctx: ActivityContext, params: ListParams) -> dict[str, Any]:
    """List the files in folder `path` matching the glob `pattern`."""
    folder = ctx.path(params.path)
    if not folder.is_dir():
        raise ActivityError(f"{folder} is not a folder")
    matches = folder.rglob(params.pattern) if params.recursive else folder.glob(params.pattern)
    return {"files": sorted(str(match) for match in matches if match.is_file())}


class AttachParams(Params):
    path: str
    """The file to attach."""
    name: str | None = None
    """Its name in the execution (default: the file's name; made unique)."""
    content_type: str | None = None
    """Its media type (default: guessed from the name)."""


class AttachOutputs(Params):
    name: str
    """The name it is kept under."""
    bytes: int
    """Its size."""
    content_type: str
    """Its media type."""


@activity("file.attach", category=CATEGORY, params=AttachParams, outputs=AttachOutputs)
@os_errors
def attach(ctx: ActivityContext, params: AttachParams) -> dict[str, Any]:
    """Attach the file `path` to the execution as an artifact, kept with it after the run.

    The file is copied at once, so later changes do not affect it. The total size of an execution's
    artifacts is limited by the runner (`EXEKRA_RUNNER_ARTIFACT_MAX_BYTES`).
    """
    attachment = ctx.attach(params.path, params.name, params.content_type)
    return {"name": attachment.name, "bytes": attachment.size, "contentType": attachment.content_type}
