"""An execution's attached files on the runner side: check each one the worker reports, then ship it.

The worker copies every attached file into the execution's staging folder (outside its workdir) and
reports an `artifact` event. The runner accepts a file only if it lies in that folder, has the size
reported, and keeps the execution within `EXEKRA_RUNNER_ARTIFACT_MAX_BYTES`; accepted files are handed to
the sender one at a time, in order, while the execution runs. The executor waits for the last one before
reporting the outcome and removes the folder afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exekra.runner.client import Rejected
from exekra.runner.logstream import LogStream


@dataclass(frozen=True)
class ArtifactFile:
    """One accepted file: its name in the execution, where it is staged, its type, size and node."""

    name: str
    path: Path
    content_type: str
    size: int
    node_id: str


ArtifactSender = Callable[[ArtifactFile], Awaitable[None]]
"""Uploads one file to the hub. Raises `Rejected` when the hub refuses the attempt (the run is abandoned);
a 413 (the hub's size limits) only costs that file."""

TOO_LARGE = 413


class ArtifactCollector:
    """Checks and ships the files of one execution (`add` from the event reader, `run` as a task)."""

    def __init__(self, directory: Path, limit_bytes: int, send: ArtifactSender | None, stream: LogStream) -> None:
        self.directory = directory
        self._limit = limit_bytes
        self._send = send
        self._stream = stream
        self._total = 0
        self._accepted: list[ArtifactFile] = []
        self._queue: asyncio.Queue[ArtifactFile | None] = asyncio.Queue()

    @property
    def accepted(self) -> tuple[ArtifactFile, ...]:
        """Every file accepted so far, in order."""
        return tuple(self._accepted)

    def add(self, event: dict[str, Any]) -> None:
        """Take one `artifact` event; a file that breaks a rule is logged, deleted and not shipped."""
        name = str(event.get("name") or "artifact")
        try:
            artifact = self._check(event, name)
        except ValueError as exc:
            self._stream.add("WARNING", f"artifact {name} refused: {exc}")
            return
        self._total += artifact.size
        self._accepted.append(artifact)
        self._queue.put_nowait(artifact)

    def finish(self) -> None:
        """No more files will come: `run` returns once the queued ones are shipped."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        """Ship accepted files one at a time until `finish`; a `Rejected` from the hub ends the run."""
        while (artifact := await self._queue.get()) is not None:
            if self._send is None:
                continue
            try:
                await self._send(artifact)
            except Rejected as exc:
                if exc.status != TOO_LARGE:
                    raise
                self._stream.add("WARNING", f"artifact {artifact.name} refused by the hub: {exc.message}")
            except Exception as exc:
                self._stream.add("WARNING", f"artifact {artifact.name} not uploaded: {type(exc).__name__}: {exc}")
            with contextlib.suppress(OSError):
                await asyncio.to_thread(artifact.path.unlink)

    def _check(self, event: dict[str, Any], name: str) -> ArtifactFile:
        raw_path, size = event.get("path"), event.get("bytes")
        if not isinstance(raw_path, str) or not isinstance(size, int) or isinstance(size, bool):
            raise ValueError("malformed event")
        path = Path(raw_path)
        try:
            inside = path.resolve().parent == self.directory.resolve()
            actual = path.stat().st_size if inside else None
        except OSError:
            actual = None
        if not inside or actual is None:
            raise ValueError("not a file in the execution's staging folder")
        if actual != size:
            with contextlib.suppress(OSError):
                path.unlink()
            raise ValueError(f"{actual} bytes on disk, {size} reported")
        if self._total + size > self._limit:
            with contextlib.suppress(OSError):
                path.unlink()
            raise ValueError(f"{size} bytes would pass the execution's limit of {self._limit} bytes")
        return ArtifactFile(
            name=name,
            path=path,
            content_type=str(event.get("contentType") or "application/octet-stream"),
            size=size,
            node_id=str(event.get("node") or ""),
        )
