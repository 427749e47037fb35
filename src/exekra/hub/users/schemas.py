"""User request bodies and the user's API shape."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from exekra.hub.schemas import ApiModel
from exekra.hub.users.models import Role, User


def _email(value: str) -> str:
    value = value.strip()
    local, _, domain = value.partition("@")
    if not local or not domain or " " in value:
        raise ValueError("not an email address")
    return value


class Credentials(ApiModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class NewUser(ApiModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=8, max_length=1024)
    name: str = Field(default="", max_length=200)
    role: Role = Role.OPERATOR

    _check_email = field_validator("email")(_email)


class Bootstrap(NewUser):
    role: Role = Role.ADMIN


class UserPatch(ApiModel):
    name: str | None = Field(default=None, max_length=200)
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class PasswordChange(ApiModel):
    """One's own password: the current one (proof it is really them) and the new one."""

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class NewApiToken(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def user_to_api(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "disabled": user.disabled,
        "createdAt": user.created_at,
    }
