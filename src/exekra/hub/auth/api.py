"""Routes: bootstrap, login, logout, me, register, API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from exekra.hub.auth import service
from exekra.hub.deps import TOKEN_COOKIE, AdminUser, CurrentUser, HubDep, client_ip, set_token_cookie
from exekra.hub.lookup import parse_id
from exekra.hub.schemas import OkAnswer
from exekra.hub.users.models import TokenKind
from exekra.hub.users.schemas import (
    ApiTokenPage,
    Bootstrap,
    Credentials,
    NewApiToken,
    NewApiTokenAnswer,
    NewUser,
    PasswordChange,
    SignedIn,
    UserAnswer,
    user_to_api,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/bootstrap", response_model=SignedIn, status_code=201)
async def bootstrap(body: Bootstrap, request: Request, response: Response, hub: HubDep) -> dict[str, Any]:
    """Create the first ADMIN; only while no user exists (then 409). Signs the new admin in."""
    user, token = await service.bootstrap(hub, body, client_ip(request))
    set_token_cookie(request, response, token, hub.settings.session_ttl_seconds)
    return {"user": user_to_api(user), "token": token}


@router.post("/login", response_model=SignedIn)
async def login(body: Credentials, request: Request, response: Response, hub: HubDep) -> dict[str, Any]:
    """Sign in: sets the HttpOnly `token` cookie and returns the token for API clients."""
    user, token = await service.sign_in(hub, body.email, body.password, client_ip(request))
    set_token_cookie(request, response, token, hub.settings.session_ttl_seconds)
    return {"user": user_to_api(user), "token": token}


@router.post("/logout", response_model=OkAnswer)
async def logout(user: CurrentUser, response: Response, hub: HubDep) -> dict[str, Any]:
    """End the current session (the token used for this request stops working)."""
    await service.revoke_token(hub.db, user.token_id, user.user_id, user.actor, "auth.logout")
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return {"ok": True}


@router.get("/me", response_model=UserAnswer)
async def me(user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"user": user_to_api(await service.get_user(hub.db, user.user_id))}


@router.post("/password", response_model=UserAnswer)
async def change_password(body: PasswordChange, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """Change one's own password (any role). The session used for this request goes on; every other session
    of the user ends; API tokens stay. A wrong `currentPassword` is `422` and counts as a failed sign-in."""
    changed = await service.change_password(hub, user, body.current_password, body.new_password)
    return {"user": user_to_api(changed)}


@router.post("/register", response_model=UserAnswer, status_code=201)
async def register(body: NewUser, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    """Create a user (ADMIN only); role defaults to OPERATOR."""
    return {"user": user_to_api(await service.create_user(hub.db, body, admin.actor))}


@router.post("/tokens", response_model=NewApiTokenAnswer, status_code=201)
async def create_token(body: NewApiToken, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """A long-lived API token for scripts; shown only in this response."""
    owner = await service.get_user(hub.db, user.user_id)
    ttl = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, row = await service.issue_token(hub.db, owner, TokenKind.API, ttl=ttl, name=body.name, actor=user.actor)
    return {"apiToken": _token_to_api(row), "token": token}


@router.get("/tokens", response_model=ApiTokenPage)
async def list_tokens(user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    tokens = [_token_to_api(t) for t in await service.list_api_tokens(hub.db, user.user_id)]
    return {"apiTokens": tokens, "total": len(tokens), "page": 1, "limit": len(tokens), "nextCursor": None}


@router.delete("/tokens/{token_id}", response_model=OkAnswer)
async def revoke(token_id: str, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    await service.revoke_token(hub.db, parse_id(token_id, "token"), user.user_id, user.actor, "token.revoke")
    return {"ok": True}


def _token_to_api(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "expiresAt": row.expires_at,
        "createdAt": row.created_at,
        "lastUsedAt": row.last_used_at,
    }
