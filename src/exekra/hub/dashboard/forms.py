"""Reading filter form values the same way on every page."""

from __future__ import annotations

from datetime import UTC, datetime

from exekra.hub.errors import ValidationFailed


def parse_moment(text: str) -> datetime | None:
    """A filter time from an `<input type="datetime-local">` (taken as UTC) or ISO-8601; None when empty."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"not a time: {text} (use YYYY-MM-DDTHH:MM, UTC)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
