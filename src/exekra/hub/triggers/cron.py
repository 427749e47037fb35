"""Cron schedules: 5-field expressions evaluated in an IANA timezone, on the `cronsim` library.

Daylight-saving changes follow Debian (Vixie) cron, as `cronsim` does: a job at a fixed time that falls
in the hour skipped in spring runs right after the change; one that falls in the hour repeated in autumn
runs once, in its first occurrence. Jobs with a wildcard minute or hour (`*/15 * * * *`) run through real
time, so through both passes of a repeated hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = "minute hour day-of-month month day-of-week"
MAX_EXPRESSION_CHARS = 200


class InvalidSchedule(ValueError):
    """A cron expression or timezone that cannot be used; the message says why, `field` says which."""

    def __init__(self, message: str, field: str = "cronExpression") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Schedule:
    """A validated cron expression in a timezone."""

    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Schedule:
        """Validate both parts and check the expression ever fires; raises `InvalidSchedule`."""
        schedule = cls(_normalise(expression), timezone)
        zone = _zone(timezone)
        try:
            CronSim(schedule.expression, datetime.now(UTC).astimezone(zone))
        except CronSimError as exc:
            raise InvalidSchedule(_reason(str(exc), schedule.expression)) from None
        if schedule.next_after(datetime.now(UTC)) is None:
            raise InvalidSchedule(f"cron expression {expression!r} never fires")
        return schedule

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (aware), in UTC; None when it never fires again."""
        start = after.astimezone(_zone(self.timezone))
        try:
            for candidate in CronSim(self.expression, start):
                fire = candidate.astimezone(UTC)
                # Inside the second pass of a repeated hour, a fixed-time job's wall clock maps back to
                # the first pass, which is already over: skip ahead to the next real occurrence.
                if fire > after:
                    return fire
        except (CronSimError, StopIteration):
            return None
        return None


def _normalise(expression: str) -> str:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidSchedule(f"cron expression is longer than {MAX_EXPRESSION_CHARS} characters")
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise InvalidSchedule(f"cron expression needs 5 fields ({FIELDS}), got {len(fields)}")
    return text


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule(
            f"unknown timezone {name!r}, use an IANA name such as 'Europe/Berlin'", "timezone"
        ) from None


def _reason(message: str, expression: str) -> str:
    # cronsim says "Bad minute", "Bad day-of-month", ...: name the field's text too.
    names = FIELDS.split()
    fields = expression.split(" ")
    for index, name in enumerate(names):
        if message == f"Bad {name}":
            return f"invalid {name} field {fields[index]!r} in cron expression {expression!r}"
    return f"invalid cron expression {expression!r}: {message}"


@lru_cache(maxsize=4096)
def explain(expression: str) -> str:
    """The expression in words (`At 09:00, Monday through Friday`), 24-hour clock; raises `InvalidSchedule`.

    Cached: cron-descriptor loads its translations on every call (about 2 ms), and a trigger list explains
    every schedule it shows.
    """
    from cron_descriptor import ExpressionDescriptor, FormatException, Options

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    text = _normalise(expression)
    try:
        return str(ExpressionDescriptor(text, options).get_description())
    except (FormatException, ValueError, KeyError, IndexError) as exc:
        raise InvalidSchedule(f"invalid cron expression {text!r}: {exc}") from None


def upcoming(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `after`, in UTC (fewer when the schedule ends)."""
    times: list[datetime] = []
    moment = after
    while len(times) < count:
        fire = schedule.next_after(moment)
        if fire is None:
            break
        times.append(fire)
        moment = fire
    return times
