"""Template filters: times, durations, percentages and JSON, the same way on every page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from jinja2 import Environment

MISSING = "\N{EN DASH}"  # what a page shows for a value that is not known (yet)


def when(value: datetime | None) -> str:
    """`2024-05-01 12:00:03 UTC` (the hub's times are all UTC)."""
    if value is None:
        return MISSING
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def span(seconds: float) -> str:
    """A short human duration: `850 ms`, `12.4 s`, `3 min 04 s`, `2 h 05 min`, `3 d 4 h`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """`12.4 s ago`, `never` for None."""
    if value is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    return "just now" if seconds < 1 else f"{span(seconds)} ago"


def duration(start: datetime | None, end: datetime | None) -> str:
    """The time from `start` to `end` (to now while `end` is unset)."""
    if start is None:
        return MISSING
    return span(max(0.0, ((end or datetime.now(UTC)) - start).total_seconds()))


def pct(value: float | None, digits: int = 0) -> str:
    return MISSING if value is None else f"{value:.{digits}f} %"


def ratio(value: float | None) -> str:
    """A ratio from 0 to 1 as a percentage."""
    return MISSING if value is None else f"{value * 100:.0f} %"


def number(value: float | None, digits: int = 0) -> str:
    """`1,234,567` or `12.5`."""
    if value is None:
        return MISSING
    return f"{value:,.{digits}f}"


def filesize(value: int) -> str:
    """`812 B`, `14.2 KiB`, `3.0 MiB`."""
    size = float(value)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return MISSING


def pretty_json(value: Any, sort_keys: bool = True) -> str:
    """Indented JSON; `sort_keys=False` keeps the keys in their order (a definition, as its author wrote it)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | (orjson.OPT_SORT_KEYS if sort_keys else 0)).decode()


def bucket_label(value: datetime, step: timedelta) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%H:%M") if step < timedelta(hours=6) else value.strftime("%m-%d %H:%M")


def zoned(value: datetime, timezone: str) -> str:
    """`Mon 2024-05-06 09:00 CEST`: a time as the clock of `timezone` shows it (UTC for an unknown zone)."""
    try:
        zone: tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return value.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def install(env: Environment) -> None:
    env.filters.update(
        when=when,
        iso=iso,
        ago=ago,
        duration=duration,
        span=span,
        pct=pct,
        ratio=ratio,
        number=number,
        filesize=filesize,
        pretty_json=pretty_json,
        zoned=zoned,
    )
    # `tojson` (data islands, data attributes) writes timestamps as ISO text, like the API.
    env.policies["json.dumps_function"] = _json_text
    env.policies["json.dumps_kwargs"] = {}


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()
