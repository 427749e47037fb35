"""Request dependencies: the hub context, who is calling, roles, rate limits, paging."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Query, Request, Response

from exekra.hub.audit.service import Actor
from exekra.hub.auth.security import RunnerClaims
from exekra.hub.context import Hub
from exekra.hub.errors import Forbidden, NotAuthenticated, RateLimited
from exekra.hub.observability import identify_caller
from exekra.hub.users.models import Role

TOKEN_COOKIE = "token"


def set_token_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure when served over TLS."""
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def` dependency in a worker
# thread, a hand-off that cost more CPU than a whole heartbeat's database work (profiled: issue 8).
async def _hub_dependency(request: Request) -> Hub:
    return get_hub(request)


HubDep = Annotated[Hub, Depends(_hub_dependency)]


def client_ip(request: Request) -> str:
    """The caller's address: the one place it is read (rate limits, sign-in limits, audit, runner records).

    It is the peer's address, or the one a trusted proxy forwarded (`EXEKRA_TRUSTED_PROXIES`, applied by
    `create_app`); `X-Forwarded-For` from anyone else never counts.
    """
    return request.client.host if request.client else "unknown"


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADERS = ("x-requested-with", "x-csrf-token")
"""Custom headers that mark a call as made by a script of this hub's own pages: a page of another site cannot
send them without a CORS preflight, which this hub never grants."""


def from_this_hub(request: Request, public_url: str | None) -> bool:
    """Whether the request's `Origin` is this hub: the host it was sent to, or the origin of `EXEKRA_PUBLIC_URL`."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False
    sent_from = urlsplit(origin)
    if sent_from.netloc == request.headers.get("host", ""):
        return True
    public = urlsplit(public_url) if public_url else None
    return public is not None and (sent_from.scheme, sent_from.netloc) == (public.scheme, public.netloc)


@dataclass(frozen=True)
class Principal:
    """An authenticated user (by session cookie, session bearer token or API token)."""

    user_id: uuid.UUID
    email: str
    role: str
    token_id: uuid.UUID
    ip: str
    by_cookie: bool = False

    @property
    def actor(self) -> Actor:
        return Actor("USER", str(self.user_id), self.ip)


def bearer_token(request: Request) -> str | None:
    for name, value in request.scope["headers"]:  # the first, as `request.headers` finds it, without making them
        if name == b"authorization":
            header = value.decode("latin-1")
            if header[:7].lower() != "bearer ":
                return None
            return header[7:].strip() or None
    return None


def presented_token(request: Request) -> str | None:
    """The bearer token, else the `token` cookie."""
    return bearer_token(request) or request.cookies.get(TOKEN_COOKIE)


async def optional_principal(request: Request, hub: HubDep) -> Principal | None:
    """The calling user, or None when the request carries no valid user token."""
    from exekra.hub.auth import service as auth_service

    bearer = bearer_token(request)
    token = bearer or request.cookies.get(TOKEN_COOKIE)
    if not token:
        return None
    found = await auth_service.resolve_token(hub.db, token)
    if found is None:
        return None
    identify_caller(f"user:{found.user_id}")
    return Principal(
        found.user_id, found.email, found.role, found.token_id, client_ip(request), by_cookie=bearer is None
    )


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def rate_limit(request: Request, response: Response, hub: HubDep, principal: OptionalPrincipal) -> None:
    """User-facing rate limit: per user when authenticated, else per client address (SPEC §10.3)."""
    client = f"user:{principal.user_id}" if principal else f"ip:{client_ip(request)}"
    decision = await hub.limiter.hit("api", client, hub.settings.rate_limit_per_minute)
    if not decision.allowed:
        raise RateLimited("Too many requests, slow down", headers=decision.headers())
    response.headers.update(decision.headers())


async def current_user(request: Request, principal: OptionalPrincipal, hub: HubDep) -> Principal:
    """The signed-in caller; an API call that changes state on the strength of the session cookie alone must
    come from this hub's pages (CSRF: `Origin`, or a custom header; the dashboard's forms have their own check)."""
    if principal is None:
        raise NotAuthenticated("Sign in or send a valid bearer token")
    if (
        principal.by_cookie
        and request.method in UNSAFE_METHODS
        and request.url.path.startswith("/api/")
        and not any(name in request.headers for name in CSRF_HEADERS)
        and not from_this_hub(request, hub.settings.public_url)
    ):
        raise Forbidden(
            "A call signed in by the session cookie must come from this hub's pages (Origin) or send "
            "X-Requested-With; scripts send a bearer token instead"
        )
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


def require_role(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits only the given roles (ADMIN is always admitted)."""
    allowed = {Role.ADMIN, *roles}

    async def _check(principal: CurrentUser) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"Your role {principal.role} may not do this")
        return principal

    return _check


AdminUser = Annotated[Principal, Depends(require_role(Role.ADMIN))]
DeveloperUser = Annotated[Principal, Depends(require_role(Role.DEVELOPER))]


async def runner_claims(request: Request, hub: HubDep) -> RunnerClaims:
    """The runner token's claims (signature and expiry checked; the epoch is checked against the row)."""
    token = bearer_token(request)
    claims = hub.runner_tokens.verify(token) if token else None
    if claims is None:
        raise NotAuthenticated("Runner token missing, invalid or expired: call /api/runner/auth")
    identify_caller(claims.caller)
    return claims


RunnerAuth = Annotated[RunnerClaims, Depends(runner_claims)]


MAX_PAGE = 1_000_000
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]
"""A page of an offset-paged list, in the API and the dashboard alike: outside 1…MAX_PAGE the answer is 422,
never a negative or overflowing OFFSET (a 500)."""


@dataclass(frozen=True)
class PageParams:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


async def page_params(
    page: PageNumber = 1,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PageParams:
    return PageParams(page, limit)


Paging = Annotated[PageParams, Depends(page_params)]
