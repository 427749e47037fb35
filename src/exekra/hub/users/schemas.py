"""User request bodies and the user's API shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from exekra.hub.schemas import ApiAnswer, ApiModel, PageInfo
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


class UserOut(ApiAnswer):
    id: str
    email: str
    name: str
    role: Role
    disabled: bool
    created_at: datetime


class UserAnswer(ApiAnswer):
    user: UserOut


class UserPage(PageInfo):
    users: list[UserOut]


class SignedIn(ApiAnswer):
    """Bootstrap and login: the user and the session token (also set as the `token` cookie)."""

    user: UserOut
    token: str


class ApiTokenOut(ApiAnswer):
    id: str
    name: str
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None


class NewApiTokenAnswer(ApiAnswer):
    """The token itself is shown only in this answer."""

    api_token: ApiTokenOut
    token: str


class ApiTokenPage(PageInfo):
    api_tokens: list[ApiTokenOut]


def user_to_api(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "disabled": user.disabled,
        "createdAt": user.created_at,
    }
