"""My account: who I am, my password, and my personal API tokens (create, shown once; list with last use;
revoke). The password form does what `POST /api/auth/password` does, through the same service call."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from exekra.hub.auth import service as auth
from exekra.hub.dashboard.web import PageRoute, attempt, form_problem, render
from exekra.hub.deps import CurrentUser, Principal, get_hub
from exekra.hub.errors import ValidationFailed
from exekra.hub.lookup import parse_id
from exekra.hub.users.models import TokenKind
from exekra.hub.users.schemas import NewApiToken, PasswordChange

router = APIRouter(route_class=PageRoute)


async def _context(request: Request, user: Principal) -> dict[str, Any]:
    db = get_hub(request).db
    return {
        "me": await auth.get_user(db, user.user_id),
        "tokens": await auth.list_api_tokens(db, user.user_id),
        "error": None,
        "form": {"name": "", "days": ""},
    }


@router.get("/account")
async def account_page(request: Request, user: CurrentUser) -> Response:
    return render(request, "me.html", await _context(request, user), section="account")


@router.post("/account/password")
async def change_password(
    request: Request,
    user: CurrentUser,
    current: Annotated[str, Form(max_length=1024)] = "",
    new: Annotated[str, Form(max_length=1024)] = "",
    confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Change one's own password: this session goes on, the user's other sessions end, API tokens stay."""

    async def change() -> None:
        data = PasswordChange(current_password=current, new_password=new)
        if new != confirm:
            raise ValidationFailed("the new password and its confirmation differ")
        await auth.change_password(get_hub(request), user, data.current_password, data.new_password)

    done = "Password changed: your other sessions are signed out; API tokens keep working."
    return await attempt(request, "/account#password", change(), done)


@router.post("/account/tokens")
async def create_token(
    request: Request,
    user: CurrentUser,
    name: Annotated[str, Form(max_length=200)] = "",
    days: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    db = get_hub(request).db
    try:
        data = NewApiToken(name=name.strip(), expires_in_days=int(days) if days.strip().isdigit() else None)
    except ValidationError as exc:
        context = await _context(request, user)
        context.update(error=form_problem(exc), form={"name": name, "days": days})
        return render(request, "me.html", context, status=422, section="account")
    owner = await auth.get_user(db, user.user_id)
    ttl = timedelta(days=data.expires_in_days) if data.expires_in_days else None
    token, row = await auth.issue_token(db, owner, TokenKind.API, ttl=ttl, name=data.name, actor=user.actor)
    context = await _context(request, user)
    context.update(new_token=token, new_row=row)
    return render(request, "me.html", context, status=201, section="account", headers={"Cache-Control": "no-store"})


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str, user: CurrentUser) -> Response:
    revoke = auth.revoke_token(
        get_hub(request).db, parse_id(token_id, "token"), user.user_id, user.actor, "token.revoke"
    )
    return await attempt(request, "/account", revoke, "Token revoked: scripts using it are signed out.")
