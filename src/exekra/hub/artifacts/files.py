"""Artifact bytes in files, under `EXEKRA_ARTIFACT_DIR`: one folder per execution, one file per artifact.

Used instead of the chunk rows when the setting is given. File work runs in threads (the event loop never
waits on the disk). A file is written before its row commits; a refused or broken upload removes it, and the
purge removes each purged execution's folder whole, so files left by a crash go with their execution.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

READ_BYTES = 1024 * 1024


class ArtifactFiles:
    """The folder `root`, shared by every hub process."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def write(self, execution_id: uuid.UUID, artifact_id: uuid.UUID, chunks: AsyncIterator[bytes]) -> str:
        """Write the chunks to the artifact's file; its location relative to the root. Removed on failure."""
        location = f"{execution_id}/{artifact_id}"
        path = self.root / location
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        file = await asyncio.to_thread(path.open, "xb")
        try:
            with file:
                async for chunk in chunks:
                    await asyncio.to_thread(file.write, chunk)
        except BaseException:
            await self.remove([location])
            raise
        return location

    async def read(self, location: str) -> AsyncIterator[bytes]:
        """The file's bytes, `READ_BYTES` at a time."""
        file = await asyncio.to_thread((self.root / location).open, "rb")
        with file:
            while chunk := await asyncio.to_thread(file.read, READ_BYTES):
                yield chunk

    async def remove(self, locations: Iterable[str]) -> None:
        """Delete these files (missing ones are fine)."""
        for location in locations:
            await asyncio.to_thread((self.root / location).unlink, True)

    async def remove_executions(self, execution_ids: Iterable[uuid.UUID]) -> None:
        """Delete the folders of these executions, with whatever they hold."""
        for execution_id in execution_ids:
            await asyncio.to_thread(shutil.rmtree, self.root / str(execution_id), True)
