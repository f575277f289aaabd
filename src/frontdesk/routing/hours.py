"""Business hours: weekly opening times in a site's own time zone, public holidays from the
``holidays`` package, the tenant's own closed dates, and exceptions (special opening hours on
one date, e.g. "New Year's Eve: 08:00-12:00" or "open on Columbus Day").

What it is for: ``check(schedule, now, default_timezone) -> HoursVerdict`` says whether a
moment is inside business hours and why, in words a business owner reads in the simulator and
on the call record. Opening times are wall-clock times of the schedule's time zone, so a
schedule "08:00-17:00" keeps meaning 08:00 local on the days daylight saving time changes.

What it must never do: read the clock (``now`` is a parameter, an aware datetime), touch the
database, or hold mutable state beyond a cache of holiday calendars (which never changes an
answer).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HoursState = Literal["open", "closed", "holiday"]

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_range(text: str) -> tuple[int, int]:
    """``"08:00-17:00"`` -> minutes after midnight ``(480, 1020)``; ``24:00`` may end a range."""
    match = _RANGE.match(text)
    if match is None:
        raise ValueError(f'opening time "{text}" must look like 08:00-17:00')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
        raise ValueError(f'opening time "{text}" is not a time of day (00:00 to 24:00)')
    if end <= start:
        raise ValueError(
            f'opening time "{text}" ends before it starts; split a range over midnight in '
            f"two (22:00-24:00 one day, 00:00-06:00 the next)"
        )
    return start, end


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone (``Europe/Berlin``), else a plain-words ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f'time zone "{name}" is unknown; use a name like America/New_York or Europe/Berlin'
        ) from exc
    return name


def _ranges(value: list[str]) -> list[str]:
    for text in value:
        parse_range(text)
    return value


class HolidayCalendar(BaseModel):
    """Public holidays of a country (and optionally a state/province) from ``holidays``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str
    subdivision: str | None = None

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        value = value.upper()
        if value not in holidays.list_supported_countries():
            raise ValueError(f'country "{value}" has no holiday calendar; use a code like US, DE')
        return value

    @field_validator("subdivision")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None


class OpeningException(BaseModel):
    """Special opening hours on one date; ``hours: []`` means closed all day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    hours: list[str] = Field(default_factory=list)
    note: str = ""

    @field_validator("hours")
    @classmethod
    def _valid(cls, value: list[str]) -> list[str]:
        return _ranges(value)


class Schedule(BaseModel):
    """Business hours of one site: weekly ranges, holidays, closed dates and exceptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str | None = None
    weekly: dict[Day, list[str]] = Field(default_factory=dict)
    holidays: HolidayCalendar | None = None
    closed_dates: dict[date, str] = Field(default_factory=dict)
    exceptions: list[OpeningException] = Field(default_factory=list)

    #: Opening times as minutes, built once (read through ``_compiled``, see there).
    _compiled: _Compiled | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value is not None else None

    @field_validator("weekly")
    @classmethod
    def _weekly_ranges(cls, value: dict[Day, list[str]]) -> dict[Day, list[str]]:
        for ranges in value.values():
            _ranges(ranges)
        return value

    @field_validator("exceptions")
    @classmethod
    def _one_per_date(cls, value: list[OpeningException]) -> list[OpeningException]:
        seen: set[date] = set()
        for exception in value:
            if exception.date in seen:
                raise ValueError(f"{exception.date} has more than one exception; keep one")
            seen.add(exception.date)
        return value

    def model_post_init(self, context: object) -> None:
        weekly = tuple(tuple(parse_range(r) for r in self.weekly.get(day, [])) for day in DAYS)
        exceptions = {e.date: (tuple(parse_range(r) for r in e.hours), e) for e in self.exceptions}
        self._compiled = _Compiled(weekly, exceptions)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A schedule's ranges in minutes after midnight, per weekday and per exception date."""

    weekly: tuple[tuple[tuple[int, int], ...], ...]
    exceptions: dict[date, tuple[tuple[tuple[int, int], ...], OpeningException]]


def _compiled(schedule: Schedule) -> _Compiled:
    """The compiled form without going through pydantic's (slow) private-attribute lookup:
    evaluation runs this on every call."""
    compiled = (schedule.__pydantic_private__ or {})["_compiled"]
    assert isinstance(compiled, _Compiled)
    return compiled


@dataclass(frozen=True, slots=True)
class HoursVerdict:
    """Whether the business is open at a moment, and the reason in plain words."""

    state: HoursState
    reason: str


@functools.lru_cache(maxsize=256)
def _calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    """One country's holidays for one year (built once; lookups are then a dict access)."""
    return holidays.country_holidays(country, subdiv=subdivision, years=year, expand=False)


def holiday_name(calendar: HolidayCalendar, day: date) -> str | None:
    """The public holiday on ``day`` (e.g. "Christmas Day"), or None."""
    found = _calendar(calendar.country, calendar.subdivision, day.year).get(day)
    return str(found) if found else None


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _within(ranges: tuple[tuple[int, int], ...], minute: int) -> tuple[int, int] | None:
    for start, end in ranges:
        if start <= minute < end:
            return start, end
    return None


def check(schedule: Schedule, now: datetime, default_timezone: str = "UTC") -> HoursVerdict:
    """Open, closed or holiday at ``now`` (aware), with the reason in plain words."""
    if now.tzinfo is None:
        raise ValueError("check() needs an aware datetime (a time with its time zone)")
    zone_name = schedule.timezone or default_timezone
    local = now.astimezone(ZoneInfo(zone_name))
    day, minute, weekday = local.date(), local.hour * 60 + local.minute, local.weekday()
    compiled = _compiled(schedule)
    when = (
        f"{DAY_NAMES[weekday][:3]} {local.year:04d}-{local.month:02d}-{local.day:02d} "
        f"{local.hour:02d}:{local.minute:02d} {zone_name}"
    )
    special = compiled.exceptions.get(day)
    if special is not None:
        minutes, exception = special
        label = f"special hours on {day}" + (f" ({exception.note})" if exception.note else "")
        hit = _within(minutes, minute)
        if hit is not None:
            return HoursVerdict("open", f"open: {when}, {label} {_fmt(hit[0])}-{_fmt(hit[1])}")
        shown = ", ".join(exception.hours) or "closed all day"
        return HoursVerdict("closed", f"closed: {when}, {label}: {shown}")
    if day in schedule.closed_dates:
        own = schedule.closed_dates[day] or "closed date"
        return HoursVerdict("holiday", f"holiday: {own} (the business's own closed date)")
    if schedule.holidays is not None:
        name = holiday_name(schedule.holidays, day)
        if name is not None:
            return HoursVerdict(
                "holiday", f"holiday: {name} ({schedule.holidays.country} public holiday)"
            )
    ranges = compiled.weekly[weekday]
    hit = _within(ranges, minute)
    if hit is not None:
        return HoursVerdict("open", f"open: {when} is within {_fmt(hit[0])}-{_fmt(hit[1])}")
    if not ranges:
        return HoursVerdict("closed", f"closed: {when}, no opening hours on {DAY_NAMES[weekday]}s")
    shown = ", ".join(f"{_fmt(s)}-{_fmt(e)}" for s, e in ranges)
    return HoursVerdict("closed", f"closed: {when} is outside {shown}")
