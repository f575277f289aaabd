"""Voicemail-check compliance: schedule slots (default every odd business hour), checks that
satisfy them, missed checks escalated exactly once, and the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from media_kit import configure

from frontdesk.cli import create_demo
from frontdesk.media import compliance
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import CheckEscalation
from frontdesk.org.service import Change
from frontdesk.store.db import Database, sqlite_url

MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def at(hour: int, minute: int = 0, day: datetime = MONDAY) -> datetime:
    return day + timedelta(hours=hour, minutes=minute)


def test_default_schedule_is_every_odd_business_hour_on_weekdays() -> None:
    schedule = compliance.parse_schedule(None)
    week = compliance.slots(schedule, MONDAY, MONDAY + timedelta(days=7))
    assert [s.hour for s in week[:5]] == [9, 11, 13, 15, 17]
    assert len(week) == 25 and {s.weekday() for s in week} == {0, 1, 2, 3, 4}


def test_schedule_in_a_time_zone_follows_its_clock() -> None:
    schedule = compliance.parse_schedule({"hours": [9], "days": [0], "timezone": "Europe/Berlin"})
    winter = compliance.slots(schedule, MONDAY, MONDAY + timedelta(days=1))
    summer_day = datetime(2026, 6, 22, tzinfo=UTC)
    summer = compliance.slots(schedule, summer_day, summer_day + timedelta(days=1))
    assert (winter[0].hour, summer[0].hour) == (8, 7)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"hours": [25]}, "must be 0-23"),
        ({"days": [7]}, r"0 \(Monday\) to 6"),
        ({"grace_minutes": 0}, "1 to 120"),
        ({"timezone": "Nowhere/Land"}, "IANA name"),
        ({"hours": "nine"}, "not valid"),
    ],
)
def test_bad_schedules_are_explained(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(compliance.ScheduleError, match=problem):
        compliance.parse_schedule(raw)


def test_checks_satisfy_slots_within_the_grace_period() -> None:
    schedule = compliance.parse_schedule(None)
    checks = [(at(9, 20), "102"), (at(12, 40), "103")]
    states = compliance.evaluate(schedule, checks, MONDAY, MONDAY + timedelta(days=1), at(13, 10))
    assert [(s.slot.hour, s.status, s.checked_by) for s in states] == [
        (9, "done", "102"),
        (11, "missed", None),
        (13, "done", "103"),
        (15, "pending", None),
        (17, "pending", None),
    ]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(sqlite_url(tmp_path))
    database.migrate()
    create_demo(database)
    # the demo's mailboxes 102 and 201 on the default schedule (UTC); the others go, so the
    # escalations are about these two only
    configure(
        database,
        Change("mailbox", "update", "102", {"pin": "1234", "responsible": ["102", "103"],
                                            "check_schedule": None}),
        Change("mailbox", "update", "201", {"pin": "1234", "escalate_to": "101",
                                            "check_schedule": None}),
        *(Change("mailbox", "delete", n) for n in ("101", "103", "202", "203")),
        Change("voicemail", "update", "settings",
               {"variables": {"service_manager_extension": "102"}}),
    )
    with database.session() as s:
        for number in ("102", "201"):
            store.require_mailbox(s, 1, number).created_at = MONDAY - timedelta(days=1)
    return database


def test_missed_checks_are_escalated_once(db: Database) -> None:
    with db.session() as s:
        box = store.require_mailbox(s, 1, "102")
        compliance.record_check(s, box, "103", "phone", at=at(9, 5))
    now = at(12)
    with db.session() as s:
        events = compliance.escalate_missed(s, now, default_escalation={1: "102"})
    assert sorted((e.mailbox, e.slot_at.hour, e.escalated_to) for e in events) == [
        ("102", 11, "102"),
        ("201", 9, "101"),
        ("201", 11, "101"),
    ]
    assert events[0].routing_key.endswith("check_missed")
    assert events[0].required_permission == "voicemail.compliance.read"
    with db.session() as s:
        assert compliance.escalate_missed(s, now + timedelta(minutes=5)) == []
        assert s.query(CheckEscalation).count() == 3


def test_no_check_is_due_before_the_mailbox_existed(db: Database) -> None:
    with db.session() as s:
        store.require_mailbox(s, 1, "102").created_at = at(12)
    with db.session() as s:
        events = compliance.escalate_missed(s, at(16))
        [report] = compliance.report(s, 1, MONDAY, MONDAY + timedelta(days=1), at(16), "102")
    assert [e.slot_at.hour for e in events if e.mailbox == "102"] == [13, 15]
    assert (report.done, report.missed, len(report.slots)) == (0, 2, 3)


def test_report_lists_checks_and_compliance(db: Database) -> None:
    with db.session() as s:
        box = store.require_mailbox(s, 1, "102")
        compliance.record_check(s, box, "102", "phone", at=at(9, 1))
        compliance.record_check(s, box, "103", "web", at=at(11, 29))
    with db.session() as s:
        [report] = compliance.report(s, 1, MONDAY, MONDAY + timedelta(days=1), at(16), "102")
    assert (report.done, report.missed, report.compliance) == (2, 2, 0.5)
    assert [c[1:] for c in report.checks] == [("102", "phone"), ("103", "web")]
    data = report.as_dict()
    assert data["responsible"] == ["102", "103"] and data["slots"][1]["checked_by"] == "103"
