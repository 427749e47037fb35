"""User administration."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.db.session import Database
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.auth.owners import token_owners
from exekra.hub.auth.security import hash_password
from exekra.hub.errors import Conflict
from exekra.hub.lookup import get_or_404
from exekra.hub.users.models import AuthToken, Role, User
from exekra.hub.users.schemas import UserPatch


async def list_users(db: Database, *, offset: int, limit: int, search: str | None) -> tuple[list[User], int]:
    query = select(User)
    if search:
        query = query.where(User.email.ilike(f"%{search}%") | User.name.ilike(f"%{search}%"))
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await session.execute(query.order_by(User.created_at, User.id).offset(offset).limit(limit))
        return list(rows.scalars()), int(total)


ADMIN_CHANGES_LOCK = 0x45584C  # serialises changes that could remove the last active admin


async def _admins_left(session: AsyncSession, excluding: User) -> int:
    """Active admins other than `excluding`, counted under a lock so two concurrent changes cannot both pass."""
    await session.execute(select(func.pg_advisory_xact_lock(ADMIN_CHANGES_LOCK)))
    return int(
        (
            await session.execute(
                select(func.count())
                .select_from(User)
                .where(User.role == Role.ADMIN, ~User.disabled, User.id != excluding.id)
            )
        ).scalar_one()
    )


async def update_user(db: Database, user_id: str, patch: UserPatch, actor: Actor) -> User:
    """Change name, role, disabled flag or password; the last active admin cannot be demoted or disabled."""
    password_hash = await hash_password(patch.password) if patch.password else None
    async with db.transaction() as session:
        user = await get_or_404(session, User, user_id, "user", for_update=True)
        losing_admin = user.role == Role.ADMIN and (
            (patch.role is not None and patch.role != Role.ADMIN) or patch.disabled is True
        )
        if losing_admin and await _admins_left(session, user) == 0:
            raise Conflict("This is the last active admin: promote another user first")
        changes = patch.model_dump(exclude_none=True, exclude={"password"})
        for field, value in changes.items():
            setattr(user, field, value)
        if password_hash:
            user.password_hash = password_hash
            changes["password"] = "changed"
        if patch.disabled or password_hash:
            # Disabling or a new password ends every session and token of the user.
            await session.execute(delete(AuthToken).where(AuthToken.user_id == user.id))
        audit.record(session, actor, "user.update", "user", user.id, changes)
    token_owners.forget()  # its role, its state, its tokens: read again
    return user


async def delete_user(db: Database, user_id: str, actor: Actor) -> None:
    async with db.transaction() as session:
        user = await get_or_404(session, User, user_id, "user", for_update=True)
        if str(user.id) == actor.id:
            raise Conflict("You cannot delete yourself")
        if user.role == Role.ADMIN and await _admins_left(session, user) == 0:
            raise Conflict("This is the last active admin")
        await session.delete(user)
        audit.record(session, actor, "user.delete", "user", user.id, {"email": user.email})
    token_owners.forget()
