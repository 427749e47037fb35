"""Sign-in, sessions, API tokens and the first admin."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError

from exekra.db.session import Database
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.auth import throttle
from exekra.hub.auth.owners import KnownToken, TokenOwner, token_owners
from exekra.hub.auth.security import (
    burn_password_check,
    hash_password,
    new_secret,
    token_hash,
    verify_password,
)
from exekra.hub.context import Hub

if TYPE_CHECKING:
    from exekra.hub.deps import Principal
from exekra.hub.errors import Conflict, NotAuthenticated, NotFound, ValidationFailed
from exekra.hub.users.models import AuthToken, Role, TokenKind, User
from exekra.hub.users.schemas import NewUser

# Built once: every user-facing request resolves its token (constructing the statement cost as much as running it).
# A token not resolved lately is read in one statement on the driver, no ORM (issue 17).
_TOKEN_OWNER = text(
    """
SELECT u.id, u.email, u.role, u.disabled, t.id AS token_id, t.expires_at, t.last_used_at
  FROM auth_tokens t JOIN users u ON u.id = t.user_id
 WHERE t.token_hash = :token_hash"""
)
_TOUCH_TOKEN = text("UPDATE auth_tokens SET last_used_at = now() WHERE id = :token_id")

LAST_USED_PRECISION = timedelta(minutes=1)
"""`lastUsedAt` is written at most once a minute per token, so that a busy script costs no write per call."""


async def resolve_token(db: Database, token: str) -> TokenOwner | None:
    """The active user behind a session or API token; notes when the token was last used. A token used lately is
    not read again (`auth.owners`: forgotten as soon as tokens or users change)."""
    hashed = token_hash(token)
    known = token_owners.get(hashed)
    if known is None:
        generation = token_owners.generation
        async with db.reading() as session:
            row = (await session.execute(_TOKEN_OWNER, {"token_hash": hashed})).first()
        if row is None or row.disabled:
            return None
        owner = TokenOwner(row.id, row.email, row.role, row.token_id)
        known = KnownToken(owner, row.expires_at, row.last_used_at, time.monotonic())
        token_owners.put(hashed, known, generation)
    now = datetime.now(UTC)
    if known.expires_at is not None and known.expires_at <= now:
        return None
    if known.last_used_at is None or now - known.last_used_at >= LAST_USED_PRECISION:
        generation = token_owners.generation
        async with db.statement() as session:
            await session.execute(_TOUCH_TOKEN, {"token_id": known.owner.token_id})
        token_owners.put(hashed, replace(known, last_used_at=now), generation)
    return known.owner


async def create_user(db: Database, data: NewUser, actor: Actor, *, only_if_none: bool = False) -> User:
    """Create a user; with `only_if_none`, only while no user exists (the bootstrap)."""
    password_hash = await hash_password(data.password)
    async with db.transaction() as session:
        if only_if_none:
            # Serialise concurrent bootstraps; the count below is then reliable.
            await session.execute(select(func.pg_advisory_xact_lock(0x45584B)))
            if (await session.execute(select(func.count()).select_from(User))).scalar_one():
                raise Conflict("The hub is already bootstrapped: sign in instead")
        user = User(email=data.email, name=data.name, role=data.role, password_hash=password_hash)
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"A user with email {data.email} already exists") from None
        audit.record(
            session,
            actor if not only_if_none else Actor("USER", str(user.id), actor.ip),
            "user.bootstrap" if only_if_none else "user.create",
            "user",
            user.id,
            {"email": user.email, "role": user.role},
        )
    return user


async def issue_token(
    db: Database, user: User, kind: TokenKind, *, ttl: timedelta | None, name: str = "", actor: Actor
) -> tuple[str, AuthToken]:
    """Create a session or API token; the plain token is returned once and only its hash is kept."""
    token = new_secret("exs_" if kind == TokenKind.SESSION else "exk_")
    expires_at = datetime.now(UTC) + ttl if ttl else None
    async with db.transaction() as session:
        row = AuthToken(user_id=user.id, token_hash=token_hash(token), kind=kind, name=name, expires_at=expires_at)
        session.add(row)
        await session.flush()
        action = "auth.login" if kind == TokenKind.SESSION else "token.create"
        audit.record(
            session,
            actor,
            action,
            "user" if kind == TokenKind.SESSION else "token",
            row.id if kind == TokenKind.API else user.id,
        )
    return token, row


async def _find_user(db: Database, account: str) -> User | None:
    async with db.session() as session:
        found: User | None = (
            await session.execute(select(User).where(func.lower(User.email) == account))
        ).scalar_one_or_none()
    return found


async def _password_matches(user: User | None, password: str) -> bool:
    """Whether `user` exists, is enabled and has this password; an unknown account costs the time of a real
    check (no enumeration by timing)."""
    if user is None:
        await burn_password_check(password)
        return False
    return await verify_password(user.password_hash, password) and not user.disabled


async def revoke_token(db: Database, token_id: uuid.UUID, user_id: uuid.UUID, actor: Actor, action: str) -> None:
    """Delete one of the user's tokens (logout or API token revocation)."""
    async with db.transaction() as session:
        result = await session.execute(
            delete(AuthToken).where(AuthToken.id == token_id, AuthToken.user_id == user_id).returning(AuthToken.id)
        )
        if result.first() is None:
            raise NotFound(f"token {token_id} not found")
        audit.record(session, actor, action, "token", token_id)
    token_owners.forget()


async def list_api_tokens(db: Database, user_id: uuid.UUID) -> list[AuthToken]:
    async with db.session() as session:
        rows = await session.execute(
            select(AuthToken)
            .where(AuthToken.user_id == user_id, AuthToken.kind == TokenKind.API)
            .order_by(AuthToken.created_at.desc())
        )
        return list(rows.scalars())


async def get_user(db: Database, user_id: uuid.UUID) -> User:
    async with db.session() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def ensure_admin(db: Database, email: str, password: str) -> bool:
    """Create an ADMIN with these credentials if no user exists yet (used by `exekra up`)."""
    try:
        await create_user(
            db,
            NewUser(email=email, password=password, name="Administrator", role=Role.ADMIN),
            Actor("SYSTEM"),
            only_if_none=True,
        )
    except Conflict:
        return False
    return True


async def sign_in(hub: Hub, email: str, password: str, ip: str) -> tuple[User, str]:
    """A session for these credentials, for the API and the dashboard alike; NotAuthenticated (the same message
    whatever was wrong), or RateLimited by the sign-in limits (`auth/throttle.py`) before the password is checked.
    """
    account = email.strip().lower()
    user = await _find_user(hub.db, account)
    async with throttle.password_check(hub, ip, account, user.id if user else None) as check:
        matched = await _password_matches(user, password)  # also for an unknown account: the same time
        if user is None or not matched:
            await _record_failure(hub, ip, account)
            raise NotAuthenticated("Wrong email or password")
        check.passed()
    return user, await _new_session(hub, user, Actor("USER", str(user.id), ip))


async def _record_failure(hub: Hub, ip: str, account: str) -> None:
    """Audit a failed password check (`auth.login_failed`: only admitted checks get here, so the entries are
    bounded by the sign-in limits)."""
    async with hub.db.transaction() as session:
        audit.record(session, Actor("USER", None, ip), "auth.login_failed", "user", None, {"email": account[:320]})


async def change_password(hub: Hub, principal: Principal, current: str, new: str) -> User:
    """Change one's own password; every other session of the user ends (API tokens stay: they are revoked
    one by one). A wrong current password counts as a failed sign-in of the account."""
    user = await get_user(hub.db, principal.user_id)
    account = user.email.strip().lower()
    async with throttle.password_check(hub, principal.ip, account, user.id) as check:
        if not await verify_password(user.password_hash, current):
            await _record_failure(hub, principal.ip, account)
            raise ValidationFailed(
                "currentPassword: wrong password",
                details=[{"loc": ["body", "currentPassword"], "msg": "wrong password", "type": "wrong_password"}],
            )
        check.passed()
    password_hash = await hash_password(new)
    async with hub.db.transaction() as session:
        changed = await session.get(User, user.id, with_for_update=True)
        if changed is None:
            raise NotFound(f"user {user.id} not found")
        changed.password_hash = password_hash
        ended = await session.execute(
            delete(AuthToken)
            .where(
                AuthToken.user_id == user.id,
                AuthToken.kind == TokenKind.SESSION,
                AuthToken.id != principal.token_id,
            )
            .returning(AuthToken.id)
        )
        audit.record(session, principal.actor, "user.password", "user", user.id, {"sessionsEnded": len(ended.all())})
    token_owners.forget()
    return changed


async def bootstrap(hub: Hub, data: NewUser, ip: str) -> tuple[User, str]:
    """Create the first ADMIN (Conflict once any user exists) and sign them in."""
    actor = Actor("USER", None, ip)
    user = await create_user(hub.db, data.model_copy(update={"role": Role.ADMIN}), actor, only_if_none=True)
    return user, await _new_session(hub, user, actor)


async def _new_session(hub: Hub, user: User, actor: Actor) -> str:
    ttl = timedelta(seconds=hub.settings.session_ttl_seconds)
    token, _ = await issue_token(hub.db, user, TokenKind.SESSION, ttl=ttl, actor=actor)
    return token
