"""The licence's request body and API shape (SPEC §10.7)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from exekra.hub.license.envelope import MAX_FILE_CHARS
from exekra.hub.schemas import ApiModel


class LicenseUpload(ApiModel):
    """`{"license": "<the .lic file's text>"}`."""

    license: str = Field(min_length=1, max_length=MAX_FILE_CHARS)


class LicenseView(BaseModel):
    """The licence in force, or community mode (`status`), and this hub's id."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    status: Literal["active", "expired", "community"]
    licensee: str | None
    email: str | None
    max_runners: int | None
    expires_at: str | None = Field(description="The last day the licence is in force (UTC), YYYY-MM-DD.")
    days_left: int | None = Field(description="Days until expiresAt: 0 on its last day, negative once expired.")
    hub_id: str
    trial: bool
    edition: str
    issued_at: str | None
    runners: int | None = Field(description="Runners registered now.")
    problem: str | None = Field(description="Why an installed licence is not in force, when that is not expiry.")


class LicenseAnswer(BaseModel):
    license: LicenseView
