"""Browser sessions: the same `token` cookie and sign-in rules as the API (`hub/auth/api.py`)."""

from __future__ import annotations

from fastapi import Request, Response
from sqlalchemy import exists, select

from exekra.hub.auth import service as auth
from exekra.hub.context import Hub
from exekra.hub.deps import TOKEN_COOKIE, Principal, client_ip, set_token_cookie
from exekra.hub.users.models import User
from exekra.hub.users.schemas import Bootstrap


async def has_users(hub: Hub) -> bool:
    """False until the first admin is created (the dashboard then offers the bootstrap page)."""
    async with hub.db.session() as session:
        return bool((await session.execute(select(exists().select_from(User)))).scalar_one())


async def sign_in(hub: Hub, request: Request, email: str, password: str) -> str:
    """A new session token, with the same failure limits as `POST /api/auth/login`."""
    _, token = await auth.sign_in(hub, email, password, client_ip(request))
    return token


async def bootstrap_admin(hub: Hub, request: Request, data: Bootstrap) -> str:
    """Create the first ADMIN (Conflict once any user exists) and sign them in."""
    _, token = await auth.bootstrap(hub, data, client_ip(request))
    return token


def set_session_cookie(hub: Hub, request: Request, response: Response, token: str) -> None:
    """The cookie `POST /api/auth/login` sets."""
    set_token_cookie(request, response, token, hub.settings.session_ttl_seconds)


async def sign_out(hub: Hub, principal: Principal, response: Response) -> None:
    """End the session this request used and drop its cookie."""
    await auth.revoke_token(hub.db, principal.token_id, principal.user_id, principal.actor, "auth.logout")
    response.delete_cookie(TOKEN_COOKIE, path="/")
