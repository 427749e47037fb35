"""Users (ADMIN): list and search, create, change role, disable and enable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from exekra.hub.auth import service as auth
from exekra.hub.dashboard.web import PageRoute, attempt, form_problem, redirect, render
from exekra.hub.deps import AdminUser, PageNumber, get_hub
from exekra.hub.errors import Conflict
from exekra.hub.lookup import parse_id
from exekra.hub.users import service
from exekra.hub.users.models import Role
from exekra.hub.users.schemas import NewUser, UserPatch

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50


@router.get("/users")
async def users_page(request: Request, admin: AdminUser, search: str = "", page: PageNumber = 1) -> Response:
    page = max(1, page)
    users, total = await service.list_users(
        get_hub(request).db, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, search=search.strip()[:200] or None
    )
    context = {
        "users": users,
        "total": total,
        "search": search,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "roles": list(Role),
        "form": {"role": Role.OPERATOR},
    }
    return render(request, "users.html", context, section="users")


@router.post("/users")
async def create_user(
    request: Request,
    admin: AdminUser,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    role: Annotated[str, Form(max_length=20)] = Role.OPERATOR,
) -> Response:
    try:
        data = NewUser(email=email, name=name, password=password, role=role)
        user = await auth.create_user(get_hub(request).db, data, admin.actor)
    except ValidationError as exc:
        return redirect(request, "/users", form_problem(exc), "error")
    except Conflict as exc:
        return redirect(request, "/users", exc.message, "error")
    return redirect(request, "/users", f"User {user.email} created as {user.role}.")


@router.post("/users/{user_id}/role")
async def change_role(
    request: Request, user_id: str, admin: AdminUser, role: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    parse_id(user_id, "user")

    async def change() -> None:
        await service.update_user(get_hub(request).db, user_id, UserPatch(role=role), admin.actor)

    return await attempt(request, "/users", change(), f"Role changed to {role}.")


@router.post("/users/{user_id}/disable")
async def disable_user(request: Request, user_id: str, admin: AdminUser) -> Response:
    parse_id(user_id, "user")
    update = service.update_user(get_hub(request).db, user_id, UserPatch(disabled=True), admin.actor)
    return await attempt(request, "/users", update, "User disabled: their sessions and API tokens are ended.")


@router.post("/users/{user_id}/enable")
async def enable_user(request: Request, user_id: str, admin: AdminUser) -> Response:
    parse_id(user_id, "user")
    update = service.update_user(get_hub(request).db, user_id, UserPatch(disabled=False), admin.actor)
    return await attempt(request, "/users", update, "User enabled.")
