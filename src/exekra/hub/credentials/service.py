"""The credential store: fields are encrypted before they reach the database and never leave it in an
API response; only the runner protocol gets them decrypted (`credential_for_runner`).

Functions that read or write fields take the hub's secret key (`hub.secret_key`); the AES key is derived
from it (`crypto.credentials_key`), and each credential's fields are sealed for its id (`crypto.credential_context`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.session import Database
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.credentials.crypto import (
    DecryptionFailed,
    credential_context,
    credentials_key,
    decrypt_fields,
    encrypt_fields,
)
from exekra.hub.credentials.models import Credential
from exekra.hub.credentials.schemas import CredentialPatch, NewCredential
from exekra.hub.errors import Conflict, NotFound
from exekra.hub.lookup import get_or_404
from exekra.hub.workflows.models import Workflow, WorkflowVersion
from exekra.workflow.definition import referenced_credentials

CredentialView = tuple[Credential, list[str] | None]
"""A credential with the sorted names of its fields (None when they no longer decrypt)."""


def _seal(secret_key: bytes, credential_id: uuid.UUID, fields: dict[str, str]) -> bytes:
    return encrypt_fields(credentials_key(secret_key), fields, credential_context(credential_id))


def _unseal(secret_key: bytes, credential: Credential) -> dict[str, str]:
    context = credential_context(credential.id)
    return decrypt_fields(credentials_key(secret_key), credential.encrypted_fields, context)


def _view(secret_key: bytes, credential: Credential) -> CredentialView:
    try:
        return credential, sorted(_unseal(secret_key, credential))
    except DecryptionFailed:
        return credential, None


async def _flush_named(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A credential named {name!r} already exists") from None


async def create_credential(db: Database, secret_key: bytes, data: NewCredential, actor: Actor) -> CredentialView:
    """Store a credential with its fields encrypted; a taken name is a conflict."""
    credential_id = uuid.uuid4()  # known before sealing: the fields are bound to it
    credential = Credential(
        id=credential_id, name=data.name, type=data.type, encrypted_fields=_seal(secret_key, credential_id, data.fields)
    )
    async with db.transaction() as session:
        session.add(credential)
        await _flush_named(session, data.name)
        details = {"name": credential.name, "type": credential.type, "fieldNames": sorted(data.fields)}
        audit.record(session, actor, "credential.create", "credential", credential.id, details)
    return credential, sorted(data.fields)


async def list_credentials(
    db: Database, secret_key: bytes, *, offset: int, limit: int
) -> tuple[list[CredentialView], int]:
    """A page of credentials by name, with the total count."""
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(Credential))).scalar_one()
        rows = await session.execute(select(Credential).order_by(Credential.name).offset(offset).limit(limit))
        credentials = list(rows.scalars())
    return [_view(secret_key, c) for c in credentials], int(total)


async def get_credential(db: Database, secret_key: bytes, credential_id: str) -> CredentialView:
    async with db.session() as session:
        credential = await get_or_404(session, Credential, credential_id, "credential")
    return _view(secret_key, credential)


async def update_credential(
    db: Database, secret_key: bytes, credential_id: str, patch: CredentialPatch, actor: Actor
) -> CredentialView:
    """Rename, retype, or replace all fields (re-encrypted under a new nonce)."""
    details: dict[str, Any] = {"changed": sorted(patch.model_fields_set)}
    async with db.transaction() as session:
        credential = await get_or_404(session, Credential, credential_id, "credential", for_update=True)
        if patch.name is not None:
            credential.name = patch.name
        if patch.type is not None:
            credential.type = patch.type
        if patch.fields is not None:
            credential.encrypted_fields = _seal(secret_key, credential.id, patch.fields)
            details["fieldNames"] = sorted(patch.fields)
        credential.updated_at = func.now()
        await _flush_named(session, credential.name)
        await session.refresh(credential, ["updated_at"])
        details["name"] = credential.name
        audit.record(session, actor, "credential.update", "credential", credential.id, details)
    return _view(secret_key, credential)


@dataclass(frozen=True)
class Reference:
    """A published workflow version whose templates read a credential."""

    workflow_id: uuid.UUID
    workflow_name: str
    version: int

    def to_api(self) -> dict[str, Any]:
        return {"workflowId": str(self.workflow_id), "workflowName": self.workflow_name, "version": self.version}


async def references(session: AsyncSession, names: set[str] | None = None) -> dict[str, list[Reference]]:
    """Credential name -> the published versions that reference it (`credentials.<name>.<field>`), by
    workflow name. Only published versions run, so only they count; `names` narrows the answer."""
    rows = await session.execute(
        select(
            Workflow.id.label("workflow_id"),
            Workflow.name.label("workflow_name"),
            WorkflowVersion.number,
            WorkflowVersion.definition,
        )
        .join(Workflow, Workflow.id == WorkflowVersion.workflow_id)
        .where(WorkflowVersion.published, func.strpos(WorkflowVersion.definition.cast(Text), "credentials") > 0)
        .order_by(Workflow.name)
    )
    found: dict[str, list[Reference]] = {}
    for row in rows:
        for name in referenced_credentials(row.definition):
            if names is None or name in names:
                found.setdefault(name, []).append(Reference(row.workflow_id, row.workflow_name, row.number))
    return found


async def delete_credential(db: Database, credential_id: str, actor: Actor, *, force: bool = False) -> None:
    """Delete a credential; Conflict while a published version references it, unless `force`."""
    async with db.transaction() as session:
        credential = await get_or_404(session, Credential, credential_id, "credential", for_update=True)
        users = (await references(session, {credential.name})).get(credential.name, [])
        if users and not force:
            listed = ", ".join(f"{r.workflow_name} v{r.version}" for r in users)
            raise Conflict(
                f"credential {credential.name} is used by the published version of {listed}: "
                "those runs would fail; delete it with force to do it anyway",
                details={"references": [r.to_api() for r in users]},
            )
        details: dict[str, Any] = {"name": credential.name}
        if users:
            details["forced"] = True
            details["references"] = [r.to_api() for r in users]
        await session.delete(credential)
        audit.record(session, actor, "credential.delete", "credential", credential.id, details)


async def credential_for_runner(
    session: AsyncSession, secret_key: bytes, name: str, reader: Actor, execution_id: str, attempt: int
) -> dict[str, Any]:
    """`{name, type, fields}` with the fields decrypted, for delivery to the runner of an execution, recorded
    in the audit log on the caller's transaction (`credential.read`: the runner, the execution, the attempt).

    NotFound for an unknown name; Conflict when the fields do not decrypt (another secret key, or a value that
    belongs to another credential).
    """
    return await read_credential(session, secret_key, name, reader, {"executionId": execution_id, "attempt": attempt})


async def read_credential(
    session: AsyncSession, secret_key: bytes, name: str, reader: Actor, why: dict[str, Any]
) -> dict[str, Any]:
    """`{name, type, fields}` with the fields decrypted, audited as `credential.read` with `why` in its details
    on the caller's transaction; NotFound for an unknown name, Conflict when the fields do not decrypt."""
    credential = (await session.execute(select(Credential).where(Credential.name == name))).scalar_one_or_none()
    if credential is None:
        raise NotFound(f"credential {name} not found")
    try:
        fields = _unseal(secret_key, credential)
    except DecryptionFailed as exc:
        raise Conflict(f"credential {name} cannot be decrypted: {exc}") from None
    details = {"name": credential.name, **why}
    audit.record(session, reader, "credential.read", "credential", credential.id, details)
    return {"name": credential.name, "type": credential.type, "fields": fields}
