"""Browser sessions: the same `token` cookie and sign-in rules as the API (`hub/auth/api.py`)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy import exists, select

from exekra.hub.audit.service import Actor
from exekra.hub.auth import service as auth
from exekra.hub.context import Hub
from exekra.hub.deps import TOKEN_COOKIE, Principal, client_ip
from exekra.hub.errors import RateLimited
from exekra.hub.users.models import TokenKind, User
from exekra.hub.users.schemas import Bootstrap


async def has_users(hub: Hub) -> bool:
    """False until the first admin is created (the dashboard then offers the bootstrap page)."""
    async with hub.db.session() as session:
        return bool((await session.execute(select(exists().select_from(User)))).scalar_one())


async def sign_in(hub: Hub, request: Request, email: str, password: str) -> str:
    """A new session token; sign-in failures count against the same per-account and per-address limits
    as `POST /api/auth/login` (RateLimited once exceeded, NotAuthenticated for wrong credentials)."""
    ip = client_ip(request)
    limit = hub.settings.login_failures_per_minute
    account = email.strip().lower()
    for bucket, key in (("login-ip", ip), ("login-account", account)):
        if await hub.limiter.peek_exceeded(bucket, key, limit) is not None:
            raise RateLimited("Too many failed sign-ins: wait a minute and try again")
    try:
        user = await auth.authenticate(hub.db, email, password)
    except Exception:
        await hub.limiter.hit("login-ip", ip, limit)
        await hub.limiter.hit("login-account", account, limit)
        raise
    return await _session_for(hub, user, Actor("USER", str(user.id), ip))


async def bootstrap_admin(hub: Hub, request: Request, data: Bootstrap) -> str:
    """Create the first ADMIN (Conflict once any user exists) and sign them in."""
    actor = Actor("USER", None, client_ip(request))
    user = await auth.create_user(hub.db, data.model_copy(update={"role": "ADMIN"}), actor, only_if_none=True)
    return await _session_for(hub, user, actor)


async def _session_for(hub: Hub, user: User, actor: Actor) -> str:
    ttl = timedelta(seconds=hub.settings.session_ttl_seconds)
    token, _ = await auth.issue_token(hub.db, user, TokenKind.SESSION, ttl=ttl, actor=actor)
    return token


def set_session_cookie(hub: Hub, request: Request, response: Response, token: str) -> None:
    """The cookie `POST /api/auth/login` sets: HttpOnly, SameSite=Lax, Secure over TLS."""
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=hub.settings.session_ttl_seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


async def sign_out(hub: Hub, principal: Principal, response: Response) -> None:
    """End the session this request used and drop its cookie."""
    await auth.revoke_token(hub.db, principal.token_id, principal.user_id, principal.actor, "auth.logout")
    response.delete_cookie(TOKEN_COOKIE, path="/")
