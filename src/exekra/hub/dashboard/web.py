"""What every dashboard page shares: templates, errors rendered as pages, CSRF checks and flash messages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.responses import RedirectResponse

from exekra import __version__
from exekra.hub.context import Hub
from exekra.hub.dashboard import formatting
from exekra.hub.deps import (
    OptionalPrincipal,
    Principal,
    from_this_hub,
    get_hub,
    optional_principal,
    presented_token,
)
from exekra.hub.errors import ExekraError, Forbidden, NotAuthenticated
from exekra.hub.users.models import Role

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
formatting.install(TEMPLATES.env)

ANON_COOKIE = "exekra_anon"  # binds the CSRF token of the sign-in and bootstrap forms before a session exists
FLASH_COOKIE = "exekra_flash"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def principal_of(request: Request) -> Principal | None:
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


# --- CSRF ------------------------------------------------------------------------------------------------


def csrf_token(request: Request) -> str | None:
    """The form token of this browser: an HMAC of its session token (or, signed out, of its anonymous cookie).

    A page of another site cannot read it, so it cannot forge a form post that carries it.
    """
    basis = (
        presented_token(request) or request.cookies.get(ANON_COOKIE) or getattr(request.state, "new_anon_cookie", None)
    )
    if not basis:
        return None
    digest = hmac.new(get_hub(request).secret_key, b"exekra-csrf:" + basis.encode(), hashlib.sha256)
    return digest.hexdigest()


def _same_origin(request: Request) -> bool:
    """No `Origin` (the form token alone then vouches), or this hub's."""
    return "origin" not in request.headers or from_this_hub(request, get_hub(request).settings.public_url)


async def check_csrf(request: Request) -> None:
    """Router dependency: every POST must come from this hub's own pages (Origin and form token)."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    expected = csrf_token(request)
    if (
        not _same_origin(request)
        or not isinstance(sent, str)
        or expected is None
        or not hmac.compare_digest(sent, expected)
    ):
        raise Forbidden("This form has expired or did not come from this hub: reload the page and try again")


async def remember_principal(request: Request, principal: OptionalPrincipal) -> None:
    """Router dependency: keep the signed-in user for the templates (resolved once per request)."""
    request.state.principal = principal


def ensure_anon_cookie(request: Request) -> None:
    """Give a signed-out browser the cookie its sign-in form token is bound to (set by `render`)."""
    if presented_token(request) is None and ANON_COOKIE not in request.cookies:
        request.state.new_anon_cookie = secrets.token_urlsafe(32)


# --- flash messages ----------------------------------------------------------------------------------------


def _sign(hub: Hub, payload: bytes) -> str:
    return hmac.new(hub.secret_key, b"exekra-flash:" + payload, hashlib.sha256).hexdigest()[:32]


def set_flash(request: Request, response: Response, message: str, kind: str = "ok") -> None:
    """A message shown once, on the next page this browser renders (after a redirect)."""
    payload = orjson.dumps([kind, message])
    value = base64.urlsafe_b64encode(payload).decode() + "." + _sign(get_hub(request), payload)
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=120,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    encoded, _, signature = raw.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _sign(get_hub(request), payload)):
        return None
    kind, message = orjson.loads(payload)  # signed by this hub: the shape `set_flash` wrote
    return {"kind": str(kind), "message": str(message)}


def redirect(request: Request, url: str, message: str | None = None, kind: str = "ok") -> Response:
    """303 to `url` (after a form post), with an optional flash message."""
    response = RedirectResponse(url, status_code=303)
    if message:
        set_flash(request, response, message, kind)
    return response


# --- rendering ---------------------------------------------------------------------------------------------

EVERYONE = (Role.ADMIN, Role.DEVELOPER, Role.OPERATOR)
NAV = (
    ("overview", "Overview", "/", EVERYONE),
    ("runners", "Runners", "/runners", EVERYONE),
    ("workflows", "Workflows", "/workflows", EVERYONE),
    ("executions", "Executions", "/executions", EVERYONE),
    ("triggers", "Triggers", "/triggers", EVERYONE),
    ("alerts", "Alerts", "/alerts", EVERYONE),
    ("credentials", "Credentials", "/credentials", (Role.ADMIN, Role.DEVELOPER)),
    ("users", "Users", "/users", (Role.ADMIN,)),
    ("audit", "Audit", "/audit", (Role.ADMIN,)),
    ("license", "Licence", "/license", (Role.ADMIN,)),
)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    section: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    """A page (or fragment) rendered with what every template may use."""
    hub = get_hub(request)
    principal = principal_of(request)
    role = principal.role if principal else None
    licence = hub.licensing.current()
    values: dict[str, Any] = {
        "user": principal,
        "is_admin": role == Role.ADMIN,
        "can_develop": role in (Role.ADMIN, Role.DEVELOPER),
        "nav": [item for item in NAV if principal and role in item[3]],
        # The licence's expiry banner (SPEC §10.7): `{"kind": "warn" | "error", "message": ...}` or None.
        "licence_banner": licence.banner() if licence else None,
        "community_edition": licence is not None and licence.status == "community",
        "section": section,
        "csrf": csrf_token(request),
        "queue_mode": hub.dispatcher.mode,
        "redis_configured": bool(hub.settings.redis_url),
        "version": __version__,
    }
    values.update(context or {})
    fragment = template.startswith("_")
    values["flash"] = None if fragment else _read_flash(request)
    response = TEMPLATES.TemplateResponse(request, template, values, status_code=status, headers=headers)
    if not fragment and FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    anon = getattr(request.state, "new_anon_cookie", None)
    if anon:
        response.set_cookie(
            ANON_COOKIE, anon, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
        )
    return response


async def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error as a page; for an htmx request a fragment (htmx keeps the page as it is on an error status)."""
    if not hasattr(request.state, "principal"):
        try:
            request.state.principal = await optional_principal(request, get_hub(request))
        except Exception:
            request.state.principal = None
    template = "_error.html" if request.headers.get("hx-request") else "error.html"
    return render(request, template, {"status": status, "message": message}, status=status, headers=headers)


def sign_in_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login" if target == "/" else f"/login?next={quote(target, safe='')}"


def local_path(target: str | None) -> str:
    """`target` when it is a path on this hub (an open redirect otherwise), else the overview."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


class PageRoute(APIRoute):
    """A dashboard route: errors become pages, and a missing sign-in becomes a trip to the sign-in page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except NotAuthenticated:
                if request.headers.get("hx-request"):
                    return Response(status_code=204, headers={"HX-Redirect": sign_in_url(request)})
                return RedirectResponse(sign_in_url(request), status_code=303)
            except ExekraError as exc:
                return await error_page(request, exc.status_code, exc.message, exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
                return await error_page(request, 422, f"{where}: {first.get('msg', 'invalid request')}")

        return page


PAGE_DEPENDENCIES = [Depends(remember_principal), Depends(check_csrf)]


def form_problem(exc: ValidationError) -> str:
    """The first problem of a form, as `<field>: <problem>`."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))


async def attempt(request: Request, back: str, action: Awaitable[Any], success: str) -> Response:
    """Run a form's action, then go `back` with its outcome as a flash message (an error too)."""
    try:
        await action
    except ValidationError as exc:
        return redirect(request, back, form_problem(exc), "error")
    except ExekraError as exc:
        if isinstance(exc, NotAuthenticated | Forbidden):
            raise
        return redirect(request, back, exc.message, "error")
    return redirect(request, back, success)
