"""Business hours: weekly ranges in the site's time zone (DST days included), public holidays,
the business's own closed dates and exceptions, and readable errors for bad settings."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError
from routing_support import BERLIN, NY, local

from frontdesk.routing.hours import Schedule, check, holiday_name, parse_range

WEEKDAYS = {d: ["08:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
SEVEN_DAYS = {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def test_ranges_parse_and_bad_ranges_say_why() -> None:
    assert parse_range("08:00-17:00") == (480, 1020)
    assert parse_range(" 22:00 - 24:00 ") == (1320, 1440)
    with pytest.raises(ValueError, match="must look like 08:00-17:00"):
        parse_range("8-5")
    with pytest.raises(ValueError, match="ends before it starts; split a range over midnight"):
        parse_range("22:00-06:00")
    with pytest.raises(ValueError, match="not a time of day"):
        parse_range("08:00-24:30")


@pytest.mark.parametrize(
    ("when", "state", "reason"),
    [
        (local(NY, 2026, 12, 22, 7, 59), "closed", "outside 08:00-12:00, 13:00-17:00"),
        (local(NY, 2026, 12, 22, 8, 0), "open", "within 08:00-12:00"),
        (local(NY, 2026, 12, 22, 12, 30), "closed", "closed: Tue 2026-12-22 12:30"),
        (local(NY, 2026, 12, 22, 16, 59), "open", "within 13:00-17:00"),
        (local(NY, 2026, 12, 22, 17, 0), "closed", "outside"),
        (local(NY, 2026, 12, 20, 10, 0), "closed", "no opening hours on Sundays"),
    ],
)
def test_weekly_hours(when: datetime, state: str, reason: str) -> None:
    verdict = check(Schedule(timezone="America/New_York", weekly=WEEKDAYS), when)
    assert verdict.state == state
    assert reason in verdict.reason


@pytest.mark.parametrize(
    ("zone", "utc", "state", "local_text"),
    [
        # The DST change days themselves, with a schedule open on Sundays. New York springs
        # forward on 2026-03-08 at 02:00 and falls back on 2026-11-01 at 02:00.
        ("America/New_York", datetime(2026, 3, 8, 12, 30, tzinfo=UTC), "open", "08:30"),
        ("America/New_York", datetime(2026, 3, 8, 11, 30, tzinfo=UTC), "closed", "07:30"),
        ("America/New_York", datetime(2026, 11, 1, 12, 30, tzinfo=UTC), "closed", "07:30"),
        ("America/New_York", datetime(2026, 11, 1, 13, 30, tzinfo=UTC), "open", "08:30"),
        ("America/New_York", datetime(2026, 11, 1, 21, 59, tzinfo=UTC), "open", "16:59"),
        ("America/New_York", datetime(2026, 11, 1, 22, 0, tzinfo=UTC), "closed", "17:00"),
        # Berlin: CET -> CEST on 2026-03-29 at 02:00, back on 2026-10-25 at 03:00.
        ("Europe/Berlin", datetime(2026, 3, 29, 6, 30, tzinfo=UTC), "open", "08:30"),
        ("Europe/Berlin", datetime(2026, 3, 29, 5, 30, tzinfo=UTC), "closed", "07:30"),
        ("Europe/Berlin", datetime(2026, 3, 29, 14, 59, tzinfo=UTC), "open", "16:59"),
        ("Europe/Berlin", datetime(2026, 3, 29, 15, 0, tzinfo=UTC), "closed", "17:00"),
        ("Europe/Berlin", datetime(2026, 10, 25, 6, 30, tzinfo=UTC), "closed", "07:30"),
        ("Europe/Berlin", datetime(2026, 10, 25, 7, 0, tzinfo=UTC), "open", "08:00"),
        ("Europe/Berlin", datetime(2026, 10, 25, 15, 59, tzinfo=UTC), "open", "16:59"),
    ],
)
def test_daylight_saving_days_keep_local_opening_times(
    zone: str, utc: datetime, state: str, local_text: str
) -> None:
    verdict = check(Schedule(timezone=zone, weekly=SEVEN_DAYS), utc)
    assert verdict.state == state
    assert f" {local_text} {zone}" in verdict.reason


def test_night_hours_across_the_fall_back_hour() -> None:
    schedule = Schedule(timezone="America/New_York", weekly={"sun": ["00:00-01:30"]})
    # 01:15 happens twice on 2026-11-01; both are inside 00:00-01:30 local time.
    assert check(schedule, datetime(2026, 11, 1, 5, 15, tzinfo=UTC)).state == "open"  # EDT
    assert check(schedule, datetime(2026, 11, 1, 6, 15, tzinfo=UTC)).state == "open"  # EST
    assert check(schedule, datetime(2026, 11, 1, 6, 45, tzinfo=UTC)).state == "closed"


def test_public_holidays_with_a_subdivision() -> None:
    bavaria = Schedule(
        timezone="Europe/Berlin", weekly=SEVEN_DAYS, holidays={"country": "de", "subdivision": "by"}
    )  # type: ignore[arg-type]
    berlin = Schedule(timezone="Europe/Berlin", weekly=SEVEN_DAYS, holidays={"country": "DE"})  # type: ignore[arg-type]
    epiphany = local(BERLIN, 2026, 1, 6, 10, 0)
    assert check(bavaria, epiphany).reason == "holiday: Epiphany (DE public holiday)"
    assert check(berlin, epiphany).state == "open"
    assert holiday_name(bavaria.holidays, date(2026, 1, 6)) == "Epiphany"  # type: ignore[arg-type]


def test_closed_dates_and_exceptions_come_before_weekly_hours_and_holidays() -> None:
    schedule = Schedule.model_validate(
        {
            "timezone": "America/New_York",
            "weekly": WEEKDAYS,
            "holidays": {"country": "US"},
            "closed_dates": {"2026-12-24": "Christmas Eve", "2026-12-28": ""},
            "exceptions": [
                {"date": "2026-12-31", "hours": ["08:00-12:00"], "note": "New Year's Eve"},
                {"date": "2026-10-12", "hours": ["08:00-17:00"], "note": "open on Columbus Day"},
                {"date": "2026-12-23", "hours": []},
            ],
        }
    )
    eve = check(schedule, local(NY, 2026, 12, 24, 10, 0))
    assert (eve.state, eve.reason) == (
        "holiday",
        "holiday: Christmas Eve (the business's own closed date)",
    )
    assert check(schedule, local(NY, 2026, 12, 28, 10, 0)).reason == (
        "holiday: closed date (the business's own closed date)")  # fmt: skip
    morning = check(schedule, local(NY, 2026, 12, 31, 11, 0))
    assert (
        morning.state == "open" and "special hours on 2026-12-31 (New Year's Eve)" in morning.reason
    )
    afternoon = check(schedule, local(NY, 2026, 12, 31, 14, 0))
    assert afternoon.state == "closed" and "08:00-12:00" in afternoon.reason
    assert check(schedule, local(NY, 2026, 10, 12, 16, 0)).state == "open"
    assert check(schedule, local(NY, 2026, 12, 23, 10, 0)).reason.endswith("closed all day")
    assert check(schedule, local(NY, 2026, 12, 25, 10, 0)).state == "holiday"


def test_default_time_zone_comes_from_the_flow() -> None:
    schedule = Schedule(weekly=SEVEN_DAYS)
    at = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # 09:00 in Berlin, 03:00 in New York
    assert check(schedule, at, "Europe/Berlin").state == "open"
    assert check(schedule, at, "America/New_York").state == "closed"


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        check(Schedule(weekly=SEVEN_DAYS), datetime(2026, 6, 1, 9, 0))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timezone": "Mars/Olympus"}, 'time zone "Mars/Olympus" is unknown'),
        ({"weekly": {"mon": ["9-5"]}}, 'opening time "9-5" must look like 08:00-17:00'),
        ({"holidays": {"country": "XX"}}, 'country "XX" has no holiday calendar'),
        ({"exceptions": [{"date": "2026-12-31"}, {"date": "2026-12-31"}]},
         "2026-12-31 has more than one exception"),
    ],
)  # fmt: skip
def test_bad_schedules_say_what_is_wrong(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate(settings)
