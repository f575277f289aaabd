"""Voicemail-check compliance: every mailbox has a check schedule and responsible people;
every check is recorded; a scheduled check nobody made is escalated once to the Service
Manager and shows in the compliance report.

Theory of operation. A schedule is a set of local hours on a set of weekdays in a time zone
(default: every odd hour of business hours, 09:00-17:00, Monday to Friday) and a grace
period (default 30 minutes). Each scheduled time is a *slot*; a check (by phone through
*97, or by opening the mailbox on the web/API) made within ``grace`` before or after the
slot satisfies it. A slot is ``done`` once satisfied, ``missed`` when its grace period has
passed without a check, otherwise ``pending``. `escalate_missed` writes one escalation row
per missed slot (a unique key makes it idempotent, so several servers or restarts never
escalate twice) and returns `MailboxCheckMissed` events for the caller to publish.

The schedule arithmetic is pure (times in, slots out); the functions taking a session read
and write the database and block (use ``asyncio.to_thread``). Never sends anything itself.
Adds the coverage check ``voicemail-checkers`` (org's coverage report loads this module): a
mailbox whose responsible people are nobody — no extension with a user, no user name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.media.events import MailboxCheckMissed
from frontdesk.media.model import CHECK_CHANNELS, CheckEscalation, Mailbox, MailboxCheck
from frontdesk.org.coverage import CoverageProblem, register_check
from frontdesk.store.models import Extension, Tenant, User

DEFAULT_SCHEDULE: dict[str, Any] = {
    "hours": [9, 11, 13, 15, 17],  # every odd hour during business hours (08:00-18:00)
    "days": [0, 1, 2, 3, 4],  # Monday to Friday
    "grace_minutes": 30,
    "timezone": "UTC",
}


class ScheduleError(ValueError):
    """A check schedule that cannot be used (the message says which part and an example)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    hours: tuple[int, ...]
    days: tuple[int, ...]
    grace: timedelta
    zone: ZoneInfo

    def describe(self) -> str:
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        hours = ", ".join(f"{h:02d}:00" for h in self.hours)
        days = " ".join(names[d] for d in self.days)
        return f"{hours} ({days}, {self.zone.key}, ±{int(self.grace.total_seconds() // 60)} min)"


def parse_schedule(raw: dict[str, Any] | None) -> Schedule:
    data = {**DEFAULT_SCHEDULE, **(raw or {})}
    try:
        hours = tuple(sorted({int(h) for h in data["hours"]}))
        days = tuple(sorted({int(d) for d in data["days"]}))
        grace = int(data["grace_minutes"])
    except (TypeError, ValueError) as exc:
        raise ScheduleError(
            f"check schedule {raw!r} is not valid ({exc}); example: "
            '{"hours": [9, 11, 13, 15, 17], "days": [0, 1, 2, 3, 4]}'
        ) from exc
    if not hours or any(not 0 <= h <= 23 for h in hours):
        raise ScheduleError(f"check schedule hours {list(hours)} must be 0-23, at least one")
    if any(not 0 <= d <= 6 for d in days):
        raise ScheduleError(f"check schedule days {list(days)} must be 0 (Monday) to 6 (Sunday)")
    if not 1 <= grace <= 120:
        raise ScheduleError(f"check schedule grace of {grace} minutes must be 1 to 120")
    try:
        zone = ZoneInfo(str(data["timezone"]))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"check schedule time zone {data['timezone']!r} is unknown; use an "
            "IANA name such as Europe/Berlin or America/New_York"
        ) from exc
    return Schedule(hours, days, timedelta(minutes=grace), zone)


def slots(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Scheduled check times in [start, end), as aware UTC datetimes."""
    out: list[datetime] = []
    day: date = start.astimezone(schedule.zone).date() - timedelta(days=1)
    last = end.astimezone(schedule.zone).date() + timedelta(days=1)
    while day <= last:
        if day.weekday() in schedule.days:
            for hour in schedule.hours:
                local = datetime.combine(day, time(hour), schedule.zone)
                at = local.astimezone(UTC)
                if start <= at < end:
                    out.append(at)
        day += timedelta(days=1)
    return out


@dataclass(frozen=True, slots=True)
class SlotStatus:
    slot: datetime
    status: str  # done, missed, pending
    checked_at: datetime | None = None
    checked_by: str | None = None


def evaluate(
    schedule: Schedule,
    checks: list[tuple[datetime, str]],
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[SlotStatus]:
    """The status of every slot in [start, end) given the checks (time, who)."""
    ordered = sorted(checks)
    out = []
    for slot in slots(schedule, start, end):
        match = next(
            (
                (at, by)
                for at, by in ordered
                if slot - schedule.grace <= at <= slot + schedule.grace
            ),
            None,
        )
        if match is not None:
            out.append(SlotStatus(slot, "done", match[0], match[1]))
        elif now > slot + schedule.grace:
            out.append(SlotStatus(slot, "missed"))
        else:
            out.append(SlotStatus(slot, "pending"))
    return out


# --- with the database ------------------------------------------------------------------------
def record_check(
    s: Session,
    box: Mailbox,
    by: str,
    channel: str,
    new_messages: int = 0,
    at: datetime | None = None,
) -> MailboxCheck:
    if channel not in CHECK_CHANNELS:
        raise ValueError(f"check channel {channel!r} must be one of {', '.join(CHECK_CHANNELS)}")
    row = MailboxCheck(
        tenant_id=box.tenant_id,
        mailbox_id=box.id,
        checked_by=by[:128],
        channel=channel,
        new_messages=new_messages,
        checked_at=at or datetime.now(UTC),
    )
    s.add(row)
    s.flush()
    return row


@dataclass(frozen=True, slots=True)
class MailboxReport:
    mailbox: str
    name: str
    schedule: str
    responsible: tuple[str, ...]
    escalate_to: str | None
    slots: tuple[SlotStatus, ...]
    checks: tuple[tuple[datetime, str, str], ...]  # (when, who, channel)

    @property
    def done(self) -> int:
        return sum(1 for s in self.slots if s.status == "done")

    @property
    def missed(self) -> int:
        return sum(1 for s in self.slots if s.status == "missed")

    @property
    def compliance(self) -> float | None:
        """Share of due slots that were checked (None when none were due yet)."""
        due = self.done + self.missed
        return self.done / due if due else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "name": self.name,
            "schedule": self.schedule,
            "responsible": list(self.responsible),
            "escalate_to": self.escalate_to,
            "done": self.done,
            "missed": self.missed,
            "compliance": self.compliance,
            "slots": [
                {
                    "slot": s.slot.isoformat(),
                    "status": s.status,
                    "checked_at": s.checked_at.isoformat() if s.checked_at else None,
                    "checked_by": s.checked_by,
                }
                for s in self.slots
            ],
            "checks": [
                {"at": at.isoformat(), "by": by, "channel": ch} for at, by, ch in self.checks
            ],
        }


def report(
    s: Session,
    tenant_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
    mailbox: str | None = None,
) -> list[MailboxReport]:
    query = select(Mailbox).where(Mailbox.tenant_id == tenant_id).order_by(Mailbox.number)
    if mailbox is not None:
        query = query.where(Mailbox.number == mailbox)
    out = []
    for box in s.scalars(query):
        schedule = parse_schedule(box.check_schedule)
        rows = s.execute(
            select(MailboxCheck.checked_at, MailboxCheck.checked_by, MailboxCheck.channel).where(
                MailboxCheck.mailbox_id == box.id,
                MailboxCheck.checked_at >= start - schedule.grace,
                MailboxCheck.checked_at < end + schedule.grace,
            )
        ).all()
        checks = [(at, by) for at, by, _ in rows]
        # no check was due before the mailbox existed
        states = evaluate(schedule, checks, max(start, box.created_at), end, now)
        within = tuple((at, by, ch) for at, by, ch in sorted(rows) if start <= at < end)
        out.append(
            MailboxReport(
                box.number,
                box.name,
                schedule.describe(),
                tuple(box.responsible or [box.number]),
                box.escalate_to,
                tuple(states),
                within,
            )
        )
    return out


def escalate_missed(
    s: Session,
    now: datetime,
    lookback: timedelta = timedelta(hours=24),
    default_escalation: dict[int, str] | None = None,
) -> list[MailboxCheckMissed]:
    """One escalation per newly missed slot in the last ``lookback``; events to publish."""
    events: list[MailboxCheckMissed] = []
    for box in s.scalars(select(Mailbox)):
        schedule = parse_schedule(box.check_schedule)
        start = max(now - lookback, box.created_at)
        rows = s.execute(
            select(MailboxCheck.checked_at, MailboxCheck.checked_by).where(
                MailboxCheck.mailbox_id == box.id, MailboxCheck.checked_at >= start - schedule.grace
            )
        ).all()
        done = {
            e
            for (e,) in s.execute(
                select(CheckEscalation.slot_at).where(
                    CheckEscalation.mailbox_id == box.id, CheckEscalation.slot_at >= start
                )
            )
        }
        target = box.escalate_to or (default_escalation or {}).get(box.tenant_id)
        for state in evaluate(schedule, [(a, b) for a, b in rows], start, now, now):
            if state.status != "missed" or state.slot in done:
                continue
            s.add(
                CheckEscalation(
                    tenant_id=box.tenant_id,
                    mailbox_id=box.id,
                    slot_at=state.slot,
                    raised_at=now,
                    escalated_to=target,
                )
            )
            events.append(
                MailboxCheckMissed(
                    box.tenant_id,
                    box.number,
                    state.slot,
                    tuple(box.responsible or [box.number]),
                    target,
                )
            )
    s.flush()
    return events


@register_check("voicemail-checkers")
def unchecked_mailboxes(s: Session, tenant: Tenant, now: datetime) -> Iterator[CoverageProblem]:
    """Mailboxes nobody is responsible for checking: none of their responsible people is an
    extension with a user or a user of the tenant (checks would be missed unnoticed)."""
    people = set(s.scalars(select(User.username).where(User.tenant_id == tenant.id)))
    people |= set(s.scalars(select(Extension.number).where(
        Extension.tenant_id == tenant.id, Extension.user_id.is_not(None))))
    for box in s.scalars(select(Mailbox).where(Mailbox.tenant_id == tenant.id)
                         .order_by(Mailbox.number)):
        responsible = list(box.responsible or [box.number])
        if people.intersection(responsible):
            continue
        yield CoverageProblem(
            "voicemail-checkers", "problem", f"mailbox {box.number}",
            f"mailbox {box.number} ({box.name}) has nobody responsible for checking it: "
            f"none of its responsible people ({', '.join(responsible)}) is an extension with "
            "a user or a user name",
            f"name who checks it: frontdesk voicemail mailbox set {box.number} --responsible "
            f"EXTENSION (or PATCH /api/v1/voicemail/mailboxes/{box.number} "
            '{"responsible": [...]})')
