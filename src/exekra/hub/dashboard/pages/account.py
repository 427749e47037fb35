"""Sign-in, the first-run bootstrap and sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from exekra.hub.dashboard import session
from exekra.hub.dashboard.web import (
    PageRoute,
    ensure_anon_cookie,
    form_problem,
    local_path,
    principal_of,
    redirect,
    render,
)
from exekra.hub.deps import CurrentUser, get_hub
from exekra.hub.errors import Conflict, NotAuthenticated, RateLimited
from exekra.hub.users.schemas import Bootstrap

router = APIRouter(route_class=PageRoute)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    hub = get_hub(request)
    if principal_of(request) is not None:
        return redirect(request, local_path(next))
    if not await session.has_users(hub):
        return redirect(request, "/bootstrap")
    ensure_anon_cookie(request)
    return render(request, "login.html", {"next": local_path(next), "email": ""})


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    hub = get_hub(request)
    try:
        token = await session.sign_in(hub, request, email, password)
    except (NotAuthenticated, RateLimited) as exc:
        context = {"next": local_path(next), "email": email, "error": exc.message}
        return render(request, "login.html", context, status=exc.status_code)
    response = redirect(request, local_path(next))
    session.set_session_cookie(hub, request, response, token)
    return response


@router.get("/bootstrap")
async def bootstrap_page(request: Request) -> Response:
    if await session.has_users(get_hub(request)):
        return redirect(request, "/login")
    ensure_anon_cookie(request)
    return render(request, "bootstrap.html", {"email": "", "name": ""})


@router.post("/bootstrap")
async def bootstrap(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    hub = get_hub(request)
    context = {"email": email, "name": name}
    try:
        if password != confirm:
            raise ValueError("the two passwords differ")
        data = Bootstrap(email=email, name=name, password=password)
        token = await session.bootstrap_admin(hub, request, data)
    except ValidationError as exc:
        return render(request, "bootstrap.html", {**context, "error": form_problem(exc)}, status=422)
    except ValueError as exc:
        return render(request, "bootstrap.html", {**context, "error": f"password: {exc}"}, status=422)
    except Conflict:
        return redirect(request, "/login", "This hub is already set up: sign in.", "error")
    response = redirect(request, "/", "Welcome! You are the administrator of this hub.")
    session.set_session_cookie(hub, request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request, user: CurrentUser) -> Response:
    response = redirect(request, "/login", "Signed out.")
    await session.sign_out(get_hub(request), user, response)
    return response
