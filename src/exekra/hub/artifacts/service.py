"""Artifacts: storing the files a runner uploads during an execution, listing and reading them back.

An upload is fenced like a log upload (this runner holds this attempt, its token is current) and checked
against two limits before its body is read: `EXEKRA_ARTIFACT_MAX_BYTES` per file and
`EXEKRA_ARTIFACT_EXECUTION_MAX_BYTES` per execution. The body is streamed into `CHUNK_BYTES` rows inside
one transaction (or into a file under `EXEKRA_ARTIFACT_DIR`, removed again if the upload fails), so a
refused or broken upload leaves nothing behind. Reads stream a file back one chunk per query, so a slow
download holds no connection between chunks.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub import lifecycle
from exekra.hub.artifacts.files import ArtifactFiles
from exekra.hub.artifacts.models import CHUNK_BYTES, Artifact, ArtifactChunk
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.errors import BadRequest, NotFound, PayloadTooLarge
from exekra.hub.executions.models import Execution
from exekra.hub.lookup import get_or_404, parse_id
from exekra.workflow.artifacts import DEFAULT_CONTENT_TYPE, safe_name

_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")

# FOR KEY SHARE: the upload's rows reference the execution, which must not go away meanwhile; the runner's
# log uploads and its final report (which update other columns) are not held up by it.
_HELD = text(
    f"""SELECT id FROM executions
 WHERE {lifecycle.held_by()} AND status IN ('ASSIGNED','RUNNING')
   FOR KEY SHARE"""
)


class NotHeld(Exception):
    """The runner does not hold this attempt (any more): the caller answers 401 or 409."""


@dataclass(frozen=True)
class ArtifactUpload:
    """One file as the runner sends it: its name, type and node, the size it declares, and its bytes."""

    name: str
    content_type: str
    node_id: str
    declared_size: int | None
    body: AsyncIterator[bytes]


@dataclass(frozen=True)
class Download:
    """A stored file and its bytes, read chunk by chunk as the iterator is consumed."""

    artifact: Artifact
    chunks: AsyncIterator[bytes]


async def store(session: AsyncSession, held: lifecycle.Attempt, upload: ArtifactUpload, settings: Settings) -> Artifact:
    """Store one uploaded file of the attempt `held` (a file of the same name from this attempt is replaced):
    in chunk rows, or in a file under `EXEKRA_ARTIFACT_DIR` when it is set.

    Raises `NotHeld` when the runner does not hold the attempt (before and after reading the body),
    `PayloadTooLarge` past a limit, `BadRequest` when the body is not the size declared.
    """
    if (await session.execute(_HELD, held.params())).first() is None:
        raise NotHeld
    name = safe_name(upload.name)
    await session.execute(
        delete(Artifact).where(
            Artifact.execution_id == held.execution_id, Artifact.attempt == held.attempt, Artifact.name == name
        )
    )
    kept = await _kept_bytes(session, held.execution_id)
    room = _room(settings, kept)
    if upload.declared_size is not None and upload.declared_size > room:
        raise PayloadTooLarge(_too_large(settings, upload.declared_size, kept))
    artifact = Artifact(
        id=uuid.uuid4(),
        execution_id=held.execution_id,
        attempt=held.attempt,
        name=name,
        content_type=_content_type(upload.content_type),
        size=0,
        node_id=upload.node_id[:255],
    )
    session.add(artifact)
    await session.flush()
    body = _Limited(upload.body, room, lambda size: _too_large(settings, size, kept))
    files = ArtifactFiles(settings.artifact_dir) if settings.artifact_dir is not None else None
    if files is not None:
        artifact.location = await files.write(held.execution_id, artifact.id, body.chunks())
    else:
        await _insert_chunks(session, artifact.id, body.chunks())
    try:
        if upload.declared_size is not None and body.size != upload.declared_size:
            raise BadRequest(f"The body has {body.size} bytes; {upload.declared_size} were declared")
        if (await session.execute(_HELD, held.params())).first() is None:
            raise NotHeld  # the attempt went stale while the body arrived
        artifact.size = body.size
        await session.flush()
    except BaseException:
        if files is not None and artifact.location is not None:
            await files.remove([artifact.location])
        raise
    return artifact


class _Limited:
    """An upload's body in `CHUNK_BYTES` pieces, counted: `PayloadTooLarge` once it passes `room` bytes."""

    def __init__(self, body: AsyncIterator[bytes], room: int, too_large: Callable[[int], str]) -> None:
        self._body = body
        self._room = room
        self._too_large = too_large
        self.size = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in _rechunked(self._body):
            self.size += len(chunk)
            if self.size > self._room:
                raise PayloadTooLarge(self._too_large(self.size))
            yield chunk


async def _insert_chunks(session: AsyncSession, artifact_id: uuid.UUID, chunks: AsyncIterator[bytes]) -> None:
    seq = 0
    async for chunk in chunks:
        await session.execute(insert(ArtifactChunk).values(artifact_id=artifact_id, seq=seq, data=chunk))
        seq += 1


async def list_artifacts(db: Database, execution_id: str | uuid.UUID) -> list[Artifact]:
    """An execution's files, oldest first (NotFound for an unknown execution)."""
    async with db.session() as session:
        execution = await get_or_404(session, Execution, execution_id, "execution")
        query = select(Artifact).where(Artifact.execution_id == execution.id).order_by(Artifact.created_at, Artifact.id)
        return list((await session.execute(query)).scalars())


async def download(
    db: Database, settings: Settings, execution_id: str | uuid.UUID, artifact_id: str, actor: Actor
) -> Download:
    """One file of an execution and its bytes; each download is audited (`artifact.download`)."""
    execution_key = parse_id(execution_id, "execution")
    async with db.transaction() as session:
        artifact = await session.get(Artifact, parse_id(artifact_id, "artifact"))
        if artifact is None or artifact.execution_id != execution_key:
            raise NotFound(f"artifact {artifact_id} not found")
        details = {"executionId": str(artifact.execution_id), "name": artifact.name, "size": artifact.size}
        audit.record(session, actor, "artifact.download", "artifact", artifact.id, details)
    if artifact.location is None:
        return Download(artifact, _read_chunks(db, artifact.id))
    if settings.artifact_dir is None:
        raise NotFound(f"artifact {artifact_id} is kept in a folder, and EXEKRA_ARTIFACT_DIR is not set")
    return Download(artifact, ArtifactFiles(settings.artifact_dir).read(artifact.location))


async def _read_chunks(db: Database, artifact_id: uuid.UUID) -> AsyncIterator[bytes]:
    seq = -1
    while True:
        async with db.session() as session:
            query = (
                select(ArtifactChunk.seq, ArtifactChunk.data)
                .where(ArtifactChunk.artifact_id == artifact_id, ArtifactChunk.seq > seq)
                .order_by(ArtifactChunk.seq)
                .limit(1)
            )
            row = (await session.execute(query)).first()
        if row is None:
            return
        seq = row.seq
        yield row.data


async def _kept_bytes(session: AsyncSession, execution_id: uuid.UUID) -> int:
    query = select(func.coalesce(func.sum(Artifact.size), 0)).where(Artifact.execution_id == execution_id)
    return int((await session.execute(query)).scalar_one())


def _room(settings: Settings, kept: int) -> int:
    return min(settings.artifact_max_bytes, settings.artifact_execution_max_bytes - kept)


def _too_large(settings: Settings, size: int, kept: int) -> str:
    if size > settings.artifact_max_bytes:
        return f"The file has {size} bytes; the limit is {settings.artifact_max_bytes} per file"
    limit = settings.artifact_execution_max_bytes
    return f"The execution keeps {kept} bytes of artifacts; {size} more would pass its limit of {limit}"


def _content_type(value: str) -> str:
    value = value.split(";", 1)[0].strip().lower()
    return value if len(value) <= 255 and _CONTENT_TYPE.match(value) else DEFAULT_CONTENT_TYPE


async def _rechunked(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body in pieces of exactly `CHUNK_BYTES` (the last one shorter), whatever sizes arrive."""
    pending = bytearray()
    async for piece in body:
        pending += piece
        while len(pending) >= CHUNK_BYTES:
            yield bytes(pending[:CHUNK_BYTES])
            del pending[:CHUNK_BYTES]
    if pending:
        yield bytes(pending)
