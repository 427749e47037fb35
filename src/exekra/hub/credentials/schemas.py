"""Credential request bodies and the credential's API shape (names only, never values)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from exekra.hub.credentials.models import Credential
from exekra.hub.schemas import ApiAnswer, ApiModel, PageInfo

# Templates read `credentials.<name>.<field>` (or `credentials['<name>']['<field>']` for names that are not
# identifiers), so names are kept to letters, digits, '_', '-' and '.'.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"

CredentialName = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]
CredentialType = Annotated[str, Field(min_length=1, max_length=50)]
FieldName = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]
FieldValue = Annotated[str, Field(max_length=65_536)]
Fields = Annotated[dict[FieldName, FieldValue], Field(min_length=1, max_length=50)]


class NewCredential(ApiModel):
    name: CredentialName
    type: CredentialType = "generic"
    fields: Fields


class CredentialPatch(ApiModel):
    """What to change; `fields`, when given, replaces every field."""

    name: CredentialName | None = None
    type: CredentialType | None = None
    fields: Fields | None = None

    @model_validator(mode="after")
    def _not_null(self) -> CredentialPatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class CredentialOut(ApiAnswer):
    """A credential by name: its field names, never their values (`fieldNames` null: they no longer decrypt)."""

    id: str
    name: str
    type: str
    field_names: list[str] | None
    created_at: datetime
    updated_at: datetime


class CredentialReference(ApiAnswer):
    """A published workflow version that uses the credential."""

    workflow_id: str
    workflow_name: str
    version: int


class ListedCredential(CredentialOut):
    references: list[CredentialReference]


class CredentialAnswer(ApiAnswer):
    credential: CredentialOut


class CredentialPage(PageInfo):
    credentials: list[ListedCredential]


def credential_to_api(credential: Credential, field_names: list[str] | None) -> dict[str, Any]:
    """`fieldNames` is null only when the stored fields no longer decrypt (the secret key changed)."""
    return {
        "id": str(credential.id),
        "name": credential.name,
        "type": credential.type,
        "fieldNames": field_names,
        "createdAt": credential.created_at,
        "updatedAt": credential.updated_at,
    }
