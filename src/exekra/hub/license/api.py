"""Routes: the licence's status (any signed-in user) and its upload (ADMIN)."""

from __future__ import annotations

from fastapi import APIRouter

from exekra.hub.deps import AdminUser, CurrentUser, HubDep
from exekra.hub.license.schemas import LicenseAnswer, LicenseUpload, LicenseView
from exekra.hub.license.service import Licensing

router = APIRouter(prefix="/api/license", tags=["license"])


async def _answer(licensing: Licensing) -> LicenseAnswer:
    status, runners = await licensing.status_with_runners()
    return LicenseAnswer(license=LicenseView.model_validate(status.to_api(runners)))


@router.get("")
async def get_license(user: CurrentUser, hub: HubDep) -> LicenseAnswer:
    """The licence in force (or community mode), its limits and days left, and this hub's id."""
    return await _answer(hub.licensing)


@router.post("")
async def install_license(body: LicenseUpload, admin: AdminUser, hub: HubDep) -> LicenseAnswer:
    """Install a `.lic` file in place of any other; it takes effect at once in every hub process.

    422 `license_invalid` (format, signature, expired), `license_hub_mismatch`, `license_email_mismatch`.
    """
    await hub.licensing.install(body.license, admin.actor)
    return await _answer(hub.licensing)
