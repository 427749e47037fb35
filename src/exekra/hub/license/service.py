"""The installed licence: install, read, revalidate, and the runner cap it sets (SPEC §10.7).

Without a licence the hub runs in community mode, with no runner cap. A licence, once installed, is enforced:
past `maxRunners`, or after `expiresAt`, new runners are refused (403 `license_limit`); nothing already
registered or running is ever stopped by licensing.

Every hub process keeps the licence it last read (for the dashboard's banner). An upload commits a `NOTIFY` on
`CHANNEL`, so every process reads it again at once; the checks that matter (a runner's registration, the API's
answer) read the database itself, so they never act on an old copy.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import SYSTEM, Actor
from exekra.hub.credentials.crypto import (
    LICENSE_CONTEXT,
    DecryptionFailed,
    credentials_key,
    decrypt_fields,
    encrypt_fields,
)
from exekra.hub.errors import LicenseEmailMismatch, LicenseHubMismatch, LicenseInvalid, LicenseLimit
from exekra.hub.license.envelope import LicenseTerms, load_public_key, verify
from exekra.hub.license.models import Installation
from exekra.hub.listener import Listener
from exekra.hub.runners.models import Runner
from exekra.hub.users.models import Role, User

log = logging.getLogger(__name__)

CHANNEL = "exekra_license"
BANNER_DAYS = 14
"""The dashboard warns this many days before the licence expires (and keeps saying so after)."""

_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")
_FIELD = "license"  # the one field of the sealed object


@dataclass(frozen=True)
class Installed:
    """What the installation row holds, checked: the hub id, and the licence's terms when one is installed
    and still verifies (`problem` says why an installed licence does not)."""

    hub_id: str
    terms: LicenseTerms | None = None
    problem: str | None = None


@dataclass(frozen=True)
class LicenseStatus:
    """The licence as the API, the dashboard and enforcement see it on a given day."""

    status: str  # active | expired | community
    hub_id: str
    terms: LicenseTerms | None
    days_left: int | None
    problem: str | None = None

    @property
    def caps_runners(self) -> bool:
        return self.status != "community"

    @property
    def not_in_force(self) -> str | None:
        """Why the licence is not in force (expired, or no longer verifies); None while it is, or without one."""
        if self.status != "expired":
            return None
        if self.problem is not None:
            return self.problem
        assert self.terms is not None  # expired by date: the terms verified
        return f"The licence of {self.terms.licensee} expired on {self.terms.expires_at.isoformat()}"

    def to_api(self, runners: int | None = None) -> dict[str, Any]:
        terms = self.terms
        return {
            "status": self.status,
            "licensee": terms.licensee if terms else None,
            "email": terms.email if terms else None,
            "maxRunners": terms.max_runners if terms else None,
            "expiresAt": terms.expires_at.isoformat() if terms else None,
            "daysLeft": self.days_left,
            "hubId": self.hub_id,
            "trial": terms.trial if terms else False,
            "edition": terms.edition if terms else "community",
            "issuedAt": terms.to_signed()["issuedAt"] if terms else None,
            "runners": runners,
            "problem": self.problem,
        }

    def banner(self) -> dict[str, str] | None:
        """The dashboard's banner: `{"kind", "message"}` from 14 days before expiry on, else None."""
        why = self.not_in_force
        if why is not None:
            return {
                "kind": "error",
                "message": f"{why}. Runners already registered keep working; new runners cannot be registered "
                "until a valid licence is installed.",
            }
        if self.days_left is not None and self.days_left <= BANNER_DAYS:
            assert self.terms is not None
            when = "today" if self.days_left == 0 else f"in {self.days_left} day{'s' if self.days_left != 1 else ''}"
            return {
                "kind": "warn",
                "message": f"The licence of {self.terms.licensee} expires {when} "
                f"({self.terms.expires_at.isoformat()}): install a new one on the Licence page.",
            }
        return None


def evaluate(installed: Installed, today: date) -> LicenseStatus:
    """The status of what is installed on `today`: community without a licence; expired once `expiresAt` has
    passed or when the installed licence no longer verifies; else active."""
    terms = installed.terms
    if terms is None and installed.problem is None:
        return LicenseStatus("community", installed.hub_id, None, None)
    if terms is None:
        return LicenseStatus("expired", installed.hub_id, None, None, installed.problem)
    days_left = (terms.expires_at - today).days
    return LicenseStatus("active" if days_left >= 0 else "expired", installed.hub_id, terms, days_left)


def utc_today() -> date:
    return datetime.now(UTC).date()


class Licensing:
    """The licence of one hub process: checks against the trusted key, stores sealed with the hub's key, and
    keeps the last status read for the pages (`current`)."""

    def __init__(self, db: Database, secret_key: bytes, public_key: Ed25519PublicKey) -> None:
        self.db = db
        self.public_key = public_key
        self.seal_key = credentials_key(secret_key)
        self.today: Callable[[], date] = utc_today
        self._installed: Installed | None = None
        self._reloads: set[asyncio.Task[Installed]] = set()

    @classmethod
    def from_settings(cls, db: Database, settings: Settings, secret_key: bytes) -> Licensing:
        """Licensing with the key of `EXEKRA_LICENSE_PUBLIC_KEY` (or the built-in one); ValueError for a bad key."""
        return cls(db, secret_key, load_public_key(settings.license_public_key))

    # --- reading ---------------------------------------------------------------------------------------

    def current(self) -> LicenseStatus | None:
        """The status from the last read of this process (None before the first)."""
        return None if self._installed is None else evaluate(self._installed, self.today())

    async def status_with_runners(self) -> tuple[LicenseStatus, int]:
        """The status read now, with how many runners are registered."""
        async with self.db.transaction() as session:  # a transaction: the first read makes the hub id
            installed = self._check(await installation(session))
            runners = await _runner_count(session)
        self._installed = installed
        return evaluate(installed, self.today()), runners

    async def reload(self) -> Installed:
        """Read the installation again (after a `NOTIFY`, a reconnection, or at start)."""
        async with self.db.transaction() as session:
            self._installed = self._check(await installation(session))
        return self._installed

    def subscribe(self, listener: Listener) -> None:
        """Read the licence again whenever any hub process installs one, and after every reconnection."""
        listener.subscribe(CHANNEL, lambda _payload: self._reload_soon(), on_connect=self._reload_soon)

    def _reload_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reload_done)

    def _reload_done(self, task: asyncio.Task[Installed]) -> None:
        self._reloads.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("licence: reading it again failed: %s", task.exception())

    def _check(self, row: Installation) -> Installed:
        """What the row holds, decrypted and verified against the trusted key and the row's hub id."""
        if row.license_sealed is None:
            return Installed(row.hub_id)
        try:
            text_ = decrypt_fields(self.seal_key, row.license_sealed, LICENSE_CONTEXT)[_FIELD]
        except DecryptionFailed as exc:
            return Installed(row.hub_id, problem=f"The installed licence cannot be decrypted: {exc}")
        try:
            terms = verify(text_, self.public_key)
        except LicenseInvalid as exc:
            return Installed(row.hub_id, problem=f"The installed licence is not valid any more: {exc.message}")
        if terms.hub_id != row.hub_id:
            return Installed(row.hub_id, problem=f"The installed licence is for hub {terms.hub_id}, not this one")
        return Installed(row.hub_id, terms)

    # --- changing -------------------------------------------------------------------------------------

    async def install(self, license_text: str, actor: Actor) -> LicenseStatus:
        """Check a `.lic` file and install it in place of any other, in every hub process at once.

        LicenseInvalid (format, signature, already expired), LicenseHubMismatch (issued for another hub id),
        LicenseEmailMismatch (its email is no active ADMIN's).
        """
        terms = verify(license_text, self.public_key)
        today = self.today()
        if terms.expires_at < today:
            raise LicenseInvalid(f"the licence expired on {terms.expires_at.isoformat()}")
        async with self.db.transaction() as session:
            row = await installation(session, for_update=True)
            if terms.hub_id != row.hub_id:
                raise LicenseHubMismatch(
                    f"the licence was issued for hub {terms.hub_id}; this hub's id is {row.hub_id}"
                )
            if not await _is_admin_email(session, terms.email):
                raise LicenseEmailMismatch(
                    f"the licence's email {terms.email} is not the email of an ADMIN of this hub"
                )
            previous = self._check(row)
            installed = Installed(row.hub_id, terms)
            status = evaluate(installed, today)
            row.license_sealed = encrypt_fields(self.seal_key, {_FIELD: license_text}, LICENSE_CONTEXT)
            row.license_installed_at = func.now()
            row.license_status = status.status
            details = {**terms.to_signed(), "replaced": previous.terms.licensee if previous.terms else None}
            audit.record(session, actor, "license.install", "license", row.hub_id, details)
            await session.execute(_NOTIFY)
        self._installed = installed
        return status

    async def revalidate(self) -> LicenseStatus:
        """Check the installed licence again (signature, binding, expiry, runner count) and record a change of
        status in the audit log, once (the maintenance loop, at start and on a schedule)."""
        async with self.db.transaction() as session:
            row = await installation(session, for_update=True)
            installed = self._check(row)
            status = evaluate(installed, self.today())
            runners = await _runner_count(session)
            if status.terms is not None and runners > status.terms.max_runners:
                log.warning(
                    "licence: %d runners are registered, the licence allows %d: new runners are refused",
                    runners,
                    status.terms.max_runners,
                )
            if row.license_status != status.status:
                details = {
                    "from": row.license_status,
                    "to": status.status,
                    "problem": status.problem,
                    "runners": runners,
                }
                audit.record(session, SYSTEM, "license.status", "license", row.hub_id, details)
                row.license_status = status.status
                await session.execute(_NOTIFY)
        self._installed = installed
        return status

    # --- enforcement ------------------------------------------------------------------------------------

    async def check_runner_capacity(self, session: AsyncSession) -> None:
        """Inside a runner registration's transaction: LicenseLimit when the licence allows no more runners.

        The installation row is locked until that transaction ends, so concurrent registrations are counted
        one after the other and never pass the cap together.
        """
        status = evaluate(self._check(await installation(session, for_update=True)), self.today())
        if not status.caps_runners:
            return
        why = status.not_in_force
        if why is not None or status.terms is None:
            raise LicenseLimit(f"{why}: no new runners can be registered (registered runners keep working)")
        runners = await _runner_count(session)
        if runners >= status.terms.max_runners:
            raise LicenseLimit(
                f"The licence allows {status.terms.max_runners} runners and {runners} are registered: "
                "delete one or install a licence with a higher limit"
            )


async def installation(session: AsyncSession, *, for_update: bool = False) -> Installation:
    """This hub's installation row, made with a new hub id the first time it is asked for."""
    query = select(Installation).where(Installation.singleton.is_(True))
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        hub_id = "hub_" + secrets.token_hex(10)
        await session.execute(pg_insert(Installation).values(singleton=True, hub_id=hub_id).on_conflict_do_nothing())
        row = (await session.execute(query)).scalar_one()
    return row


async def _is_admin_email(session: AsyncSession, email: str) -> bool:
    found = await session.execute(
        select(User.id).where(
            func.lower(User.email) == email.strip().lower(), User.role == Role.ADMIN, User.disabled.is_(False)
        )
    )
    return found.first() is not None


async def _runner_count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(Runner))).scalar_one())
