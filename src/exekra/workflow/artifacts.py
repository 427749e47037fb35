"""Files an execution attaches (a screenshot, a report, a download), to be kept with the execution.

In the runner's worker each attached file is copied at once into a staging directory outside the
execution's workdir (which vanishes when the run ends) and reported to the runner agent as an
`artifact` event; the agent checks it and ships it to the hub.
"""

from __future__ import annotations

import mimetypes
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exekra.workflow.errors import ActivityError

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_NAME_CHARS = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")


@dataclass(frozen=True)
class Attachment:
    """One attached file: its name in the execution, where the file is now, its type and size."""

    name: str
    path: Path
    content_type: str
    size: int
    node_id: str

    def to_event(self) -> dict[str, Any]:
        """The worker's `artifact` event (without its timestamp)."""
        return {
            "type": "artifact",
            "name": self.name,
            "path": str(self.path),
            "contentType": self.content_type,
            "bytes": self.size,
            "node": self.node_id,
        }


class Artifacts:
    """The files one execution attaches, with a limit on their total size.

    With `directory`, each file is copied there under its (unique) name; without, it stays where it
    is (runs inside a test). `on_attach` hears of every attachment, from the activity's thread.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        limit_bytes: int | None = None,
        on_attach: Callable[[Attachment], None] | None = None,
    ) -> None:
        self._directory = directory
        self._limit = limit_bytes
        self._on_attach = on_attach
        self._lock = threading.Lock()
        self._attached: list[Attachment] = []
        self._total = 0

    @property
    def attached(self) -> list[Attachment]:
        """Everything attached so far, in order."""
        with self._lock:
            return list(self._attached)

    def attach(
        self, node_id: str, source: Path, name: str | None = None, content_type: str | None = None
    ) -> Attachment:
        """Attach the file `source`; `ActivityError` if it is missing or would pass the size limit."""
        if not source.is_file():
            raise ActivityError(f"cannot attach {source}: not a file")
        size = source.stat().st_size
        with self._lock:
            if self._limit is not None and self._total + size > self._limit:
                raise ActivityError(
                    f"cannot attach {source.name} ({size} bytes): the execution's artifacts would pass "
                    f"the limit of {self._limit} bytes"
                )
            unique = self._unique_name(safe_name(name or source.name))
            path = source
            if self._directory is not None:
                self._directory.mkdir(parents=True, exist_ok=True)
                path = self._directory / unique
                shutil.copyfile(source, path)
            guessed = mimetypes.guess_type(unique)[0]
            attachment = Attachment(unique, path, content_type or guessed or DEFAULT_CONTENT_TYPE, size, node_id)
            self._attached.append(attachment)
            self._total += size
        if self._on_attach is not None:
            self._on_attach(attachment)
        return attachment

    def _unique_name(self, name: str) -> str:
        taken = {attachment.name for attachment in self._attached}
        stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{stem}-{number}{dot}{suffix}"
        return candidate


def safe_name(name: str) -> str:
    """A file name without folders or unusual characters, at most `MAX_NAME_CHARS` long."""
    base = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).strip(" .")
    return base[-MAX_NAME_CHARS:] or "artifact"
