"""Routes: bootstrap, login, logout, me, register, API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from exekra.hub.audit.service import Actor
from exekra.hub.auth import service
from exekra.hub.deps import TOKEN_COOKIE, AdminUser, CurrentUser, HubDep, client_ip
from exekra.hub.errors import RateLimited
from exekra.hub.lookup import parse_id
from exekra.hub.users.models import TokenKind
from exekra.hub.users.schemas import Bootstrap, Credentials, NewApiToken, NewUser, user_to_api

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/bootstrap", status_code=201)
async def bootstrap(body: Bootstrap, request: Request, response: Response, hub: HubDep) -> dict[str, Any]:
    """Create the first ADMIN; only while no user exists (then 409). Signs the new admin in."""
    actor = Actor("USER", None, client_ip(request))
    user = await service.create_user(hub.db, body.model_copy(update={"role": "ADMIN"}), actor, only_if_none=True)
    token, _ = await service.issue_token(
        hub.db, user, TokenKind.SESSION, ttl=timedelta(seconds=hub.settings.session_ttl_seconds), actor=actor
    )
    _set_cookie(response, request, token, hub.settings.session_ttl_seconds)
    return {"user": user_to_api(user), "token": token}


@router.post("/login")
async def login(body: Credentials, request: Request, response: Response, hub: HubDep) -> dict[str, Any]:
    """Sign in: sets the HttpOnly `token` cookie and returns the token for API clients."""
    ip = client_ip(request)
    limit = hub.settings.login_failures_per_minute
    account = body.email.strip().lower()
    for bucket, key in (("login-ip", ip), ("login-account", account)):
        blocked = await hub.limiter.peek_exceeded(bucket, key, limit)
        if blocked is not None:
            raise RateLimited("Too many failed sign-ins, try again later", headers=blocked.headers())
    try:
        user = await service.authenticate(hub.db, body.email, body.password)
    except Exception:
        await hub.limiter.hit("login-ip", ip, limit)
        await hub.limiter.hit("login-account", account, limit)
        raise
    actor = Actor("USER", str(user.id), ip)
    token, _ = await service.issue_token(
        hub.db, user, TokenKind.SESSION, ttl=timedelta(seconds=hub.settings.session_ttl_seconds), actor=actor
    )
    _set_cookie(response, request, token, hub.settings.session_ttl_seconds)
    return {"user": user_to_api(user), "token": token}


def _set_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.post("/logout")
async def logout(user: CurrentUser, response: Response, hub: HubDep) -> dict[str, Any]:
    """End the current session (the token used for this request stops working)."""
    await service.revoke_token(hub.db, user.token_id, user.user_id, user.actor, "auth.logout")
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return {"ok": True}


@router.get("/me")
async def me(user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    return {"user": user_to_api(await service.get_user(hub.db, user.user_id))}


@router.post("/register", status_code=201)
async def register(body: NewUser, admin: AdminUser, hub: HubDep) -> dict[str, Any]:
    """Create a user (ADMIN only); role defaults to OPERATOR."""
    return {"user": user_to_api(await service.create_user(hub.db, body, admin.actor))}


@router.post("/tokens", status_code=201)
async def create_token(body: NewApiToken, user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    """A long-lived API token for scripts; shown only in this response."""
    owner = await service.get_user(hub.db, user.user_id)
    ttl = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, row = await service.issue_token(hub.db, owner, TokenKind.API, ttl=ttl, name=body.name, actor=user.actor)
    return {"apiToken": _token_to_api(row), "token": token}


@router.get("/tokens")
async def list_tokens(user: CurrentUser, hub: HubDep) -> dict[str, Any]:
    tokens = [_token_to_api(t) for t in await service.list_api_tokens(hub.db, user.user_id)]
    return {"apiTokens": tokens, "total": len(tokens), "page": 1, "limit": len(tokens), "nextCursor": None}


@router.delete("/tokens/{token_id}")
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
