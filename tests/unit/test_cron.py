"""Cron evaluation (SPEC §9): against a second, independent implementation, and DST tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exekra.hub.triggers.cron import InvalidSchedule, Schedule

# --- a second implementation: scan day by day, then hours and minutes, in local wall-clock time ------------

RANGES = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 7)}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def _values(field: str, text: str) -> set[int]:
    low, high = RANGES[field]
    values: set[int] = set()
    for part in text.split(","):
        term, _, step = part.partition("/")
        if term == "*":
            first, last = low, high
        elif "-" in term:
            first, last = (_number(field, x) for x in term.split("-"))
        else:
            first = last = _number(field, term)
            if step:
                last = high
        values.update(range(first, last + 1, int(step) if step else 1))
    if field == "dow" and 7 in values:
        values = (values - {7}) | {0}
    return values


def _number(field: str, text: str) -> int:
    if field == "month" and text in MONTHS:
        return MONTHS.index(text) + 1
    if field == "dow" and text in DAYS:
        return DAYS.index(text)
    return int(text)


def reference_next(expression: str, zone: ZoneInfo, after: datetime, years: int = 10) -> datetime | None:
    """The first wall-clock match after `after`, for zones without DST changes."""
    minute, hour, dom, month, dow = expression.split()
    minutes, hours = sorted(_values("minute", minute)), sorted(_values("hour", hour))
    doms, months, dows = _values("dom", dom), _values("month", month), _values("dow", dow)
    either_day = not (dom.startswith("*") or dow.startswith("*"))  # Vixie cron: both restricted → OR
    local = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
    day = local.date()
    for _ in range(366 * years):
        if day.month in months:
            dom_ok, dow_ok = day.day in doms, (day.weekday() + 1) % 7 in dows
            if (dom_ok or dow_ok) if either_day else (dom_ok and dow_ok):
                for h in hours:
                    for m in minutes:
                        candidate = datetime(day.year, day.month, day.day, h, m)
                        if candidate > local:
                            return candidate.replace(tzinfo=zone).astimezone(UTC)
        day += timedelta(days=1)
    return None


# --- expressions in the standard syntax ---------------------------------------------------------------------


def _field(name: str, *, names: list[str] | None = None) -> st.SearchStrategy[str]:
    low, high = RANGES[name]
    number = st.integers(low, high)

    def show(value: int) -> st.SearchStrategy[str]:
        if names and value - (1 if name == "month" else 0) in range(len(names)):
            return st.sampled_from([str(value), names[value - (1 if name == "month" else 0)]])
        return st.just(str(value))

    single = number.flatmap(show)
    span = st.tuples(number, number).map(sorted).map(lambda ab: f"{ab[0]}-{ab[1]}")
    stepped = st.tuples(st.sampled_from(["*", f"{low}"]), st.integers(1, high - low or 1)).map(
        lambda ts: f"{ts[0]}/{ts[1]}"
    )
    term = st.one_of(single, span, stepped)
    listed = st.lists(term, min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), listed)


EXPRESSIONS = st.tuples(
    _field("minute"),
    _field("hour"),
    _field("dom"),
    _field("month", names=MONTHS),
    _field("dow", names=DAYS),
).map(" ".join)
INSTANTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
FIXED_ZONES = st.sampled_from([ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("Asia/Tokyo")])
DST_ZONES = st.sampled_from([ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")])


def _schedule(expression: str, zone: ZoneInfo) -> Schedule | None:
    try:
        return Schedule.parse(expression, zone.key)
    except InvalidSchedule:
        return None  # e.g. "0 0 31 2 *": refused on save, nothing to compare


@settings(max_examples=300, deadline=None)
@given(EXPRESSIONS, FIXED_ZONES, INSTANTS)
def test_next_fire_matches_the_reference_implementation(expression: str, zone: ZoneInfo, after: datetime) -> None:
    schedule = _schedule(expression, zone)
    if schedule is None:
        return
    expected = reference_next(expression, zone, after)
    if expected is not None:
        assert schedule.next_after(after) == expected


@settings(max_examples=150, deadline=None)
@given(EXPRESSIONS, DST_ZONES, INSTANTS)
def test_fires_across_dst_are_increasing_and_never_repeat_a_fixed_wall_clock_time(
    expression: str, zone: ZoneInfo, after: datetime
) -> None:
    schedule = _schedule(expression, zone)
    if schedule is None:
        return
    fires: list[datetime] = []
    current = after
    for _ in range(6):
        fire = schedule.next_after(current)
        if fire is None:
            break
        assert fire > current and fire.second == 0
        fires.append(fire)
        current = fire
    fixed_time = not (expression.split()[0].startswith("*") or expression.split()[1].startswith("*"))
    if fixed_time:
        walls = [f.astimezone(zone).replace(tzinfo=None) for f in fires]
        assert len(set(walls)) == len(walls)


# --- known tables ------------------------------------------------------------------------------------------


def _fires(expression: str, zone: str, start: str, count: int) -> list[str]:
    schedule = Schedule.parse(expression, zone)
    current = datetime.fromisoformat(start)
    out = []
    for _ in range(count):
        fire = schedule.next_after(current)
        assert fire is not None
        out.append(fire.strftime("%Y-%m-%d %H:%MZ"))
        current = fire
    return out


def test_daily_0230_fires_once_on_the_autumn_change_day() -> None:
    # Europe/Berlin, 2025-10-26: 03:00 CEST → 02:00 CET, so 02:30 happens twice; the job runs once.
    assert _fires("30 2 * * *", "Europe/Berlin", "2025-10-24T12:00:00+00:00", 3) == [
        "2025-10-25 00:30Z",
        "2025-10-26 00:30Z",
        "2025-10-27 01:30Z",
    ]


def test_daily_0130_fires_once_on_new_york_fall_back_day() -> None:
    assert _fires("30 1 * * *", "America/New_York", "2025-11-01T12:00:00+00:00", 3) == [
        "2025-11-02 05:30Z",
        "2025-11-03 06:30Z",
        "2025-11-04 06:30Z",
    ]


def test_job_in_the_skipped_spring_hour_runs_right_after_the_change() -> None:
    # Europe/Berlin, 2025-03-30: 02:00 CET → 03:00 CEST; 02:30 does not exist, the job runs at 03:00 CEST.
    assert _fires("30 2 * * *", "Europe/Berlin", "2025-03-28T12:00:00+00:00", 3) == [
        "2025-03-29 01:30Z",
        "2025-03-30 01:00Z",
        "2025-03-31 00:30Z",
    ]


def test_interval_job_runs_through_both_passes_of_the_repeated_hour() -> None:
    assert _fires("*/30 2 * * *", "Europe/Berlin", "2025-10-25T23:00:00+00:00", 5) == [
        "2025-10-26 00:00Z",
        "2025-10-26 00:30Z",
        "2025-10-26 01:00Z",
        "2025-10-26 01:30Z",
        "2025-10-27 01:00Z",
    ]


def test_next_fire_from_inside_the_repeated_hour_is_never_in_the_past() -> None:
    schedule = Schedule.parse("30 2 * * *", "Europe/Berlin")
    inside_second_pass = datetime(2025, 10, 26, 1, 15, tzinfo=UTC)  # 02:15 CET, after 02:30 CEST fired
    assert schedule.next_after(inside_second_pass) == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)


def test_day_of_month_and_day_of_week_are_either_when_both_are_restricted() -> None:
    # The 13th, or any Friday (Vixie cron), from Thursday 2025-06-05.
    assert _fires("0 9 13 * FRI", "UTC", "2025-06-05T12:00:00+00:00", 3) == [
        "2025-06-06 09:00Z",
        "2025-06-13 09:00Z",
        "2025-06-20 09:00Z",
    ]


def test_aliases_and_whitespace_are_normalised() -> None:
    assert Schedule.parse("@daily").expression == "0 0 * * *"
    assert Schedule.parse("  0   12 * *  MON ").expression == "0 12 * * MON"
    assert Schedule.parse("0 0 * * *", "Asia/Kolkata").timezone == "Asia/Kolkata"


@pytest.mark.parametrize(
    ("expression", "timezone", "reason"),
    [
        ("61 * * * *", "UTC", "invalid minute field '61'"),
        ("* 24 * * *", "UTC", "invalid hour field '24'"),
        ("* * 0 * *", "UTC", "invalid day-of-month field '0'"),
        ("* * * 13 *", "UTC", "invalid month field '13'"),
        ("* * * * 8", "UTC", "invalid day-of-week field '8'"),
        ("*/0 * * * *", "UTC", "invalid minute field"),
        ("* * * *", "UTC", "needs 5 fields"),
        ("0 0 0 * * *", "UTC", "needs 5 fields"),
        ("", "UTC", "needs 5 fields"),
        ("0 0 30 2 *", "UTC", "invalid day-of-month field '30'"),
        ("0 0 * * *", "Nowhere/City", "unknown timezone 'Nowhere/City'"),
        ("0 0 * * *", "Europe", "unknown timezone 'Europe'"),
        ("0 0 * * *", "../../etc/passwd", "unknown timezone"),
        ("0 " * 150, "UTC", "longer than 200"),
    ],
)
def test_invalid_schedules_say_why(expression: str, timezone: str, reason: str) -> None:
    with pytest.raises(InvalidSchedule) as info:
        Schedule.parse(expression, timezone)
    assert reason in str(info.value)
    assert info.value.field == ("timezone" if "timezone" in reason else "cronExpression")
