"""The day-one flows, table-driven: the front-desk routine inside and outside business hours,
on holidays and on the days daylight saving time changes (America/New_York, Europe/Berlin)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from routing_support import (
    BERLIN,
    NY,
    Responder,
    acme_directory,
    answering,
    context,
    everyone_answers,
    local,
    nobody_answers,
    nodes,
    notes,
    run_call,
)

from frontdesk.routing.actions import ConnectedAction, RingAction, VoicemailAction
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.evaluate import start
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.templates import after_hours, front_desk, template
from frontdesk.routing.validate import find_problems

OPEN_PATH = ["start", "business-hours", "ring-office-manager"]
TEAM_PATH = [*OPEN_PATH, "ring-service-team"]
VOICEMAIL_PATH = [*TEAM_PATH, "voicemail-service-manager"]
AFTER_HOURS_PATH = ["start", "business-hours", "after-hours-message", "voicemail-after-hours"]

NEW_YORK = front_desk()
GERMANY = front_desk(timezone="Europe/Berlin", country="DE")

CASES: list[tuple[str, FlowDocument, datetime, Responder, list[str], str, str]] = [
    # id, flow, when, who answers, nodes visited, how it ends, a reason on the path
    ("office manager answers", NEW_YORK, local(NY, 2026, 12, 22, 10, 30), everyone_answers,
     OPEN_PATH, "connected 101", "within 08:00-17:00"),
    ("office manager away, service manager answers", NEW_YORK, local(NY, 2026, 12, 22, 10, 30),
     answering("102"), TEAM_PATH, "connected 102", "nobody answered in 20 s"),
    ("office manager away, coordinator answers", NEW_YORK, local(NY, 2026, 12, 22, 10, 30),
     answering("103"), TEAM_PATH, "connected 103", "ringing 102 (Service Manager), 103"),
    ("office manager busy goes on to the team", NEW_YORK, local(NY, 2026, 12, 22, 10, 30),
     answering("102", busy=["101"]), TEAM_PATH, "connected 102", "busy"),
    ("nobody answers: service manager's voicemail", NEW_YORK, local(NY, 2026, 12, 22, 16, 59),
     nobody_answers, VOICEMAIL_PATH, "voicemail 102 standard", "within 08:00-17:00"),
    ("after 17:00: after-hours message and voicemail", NEW_YORK, local(NY, 2026, 12, 22, 17, 30),
     everyone_answers, AFTER_HOURS_PATH, "voicemail 102 standard", "outside 08:00-17:00"),
    ("before 08:00", NEW_YORK, local(NY, 2026, 12, 22, 7, 59), everyone_answers,
     AFTER_HOURS_PATH, "voicemail 102 standard", "closed: Tue 2026-12-22 07:59"),
    ("Saturday", NEW_YORK, local(NY, 2026, 12, 19, 11, 0), everyone_answers, AFTER_HOURS_PATH,
     "voicemail 102 standard", "no opening hours on Saturdays"),
    ("Christmas Day", NEW_YORK, local(NY, 2026, 12, 25, 10, 0), everyone_answers,
     AFTER_HOURS_PATH, "voicemail 102 standard", "holiday: Christmas Day (US public holiday)"),
    ("Independence Day observed on Friday", NEW_YORK, local(NY, 2026, 7, 3, 10, 0),
     everyone_answers, AFTER_HOURS_PATH, "voicemail 102 standard", "Independence Day"),
    # DST starts Sunday 2026-03-08 in New York: 12:30 UTC is 08:30 EDT on Monday (open),
    # it would be 07:30 with the winter offset.
    ("US DST start, Sunday itself", NEW_YORK, datetime(2026, 3, 8, 14, 0, tzinfo=UTC),
     everyone_answers, AFTER_HOURS_PATH, "voicemail 102 standard", "Sun 2026-03-08 10:00"),
    ("US DST start, Monday 08:30 EDT", NEW_YORK, datetime(2026, 3, 9, 12, 30, tzinfo=UTC),
     everyone_answers, OPEN_PATH, "connected 101", "Mon 2026-03-09 08:30"),
    ("US DST end, Monday 07:30 EST", NEW_YORK, datetime(2026, 11, 2, 12, 30, tzinfo=UTC),
     everyone_answers, AFTER_HOURS_PATH, "voicemail 102 standard", "Mon 2026-11-02 07:30"),
    ("US DST end, Monday 16:30 EST", NEW_YORK, datetime(2026, 11, 2, 21, 30, tzinfo=UTC),
     everyone_answers, OPEN_PATH, "connected 101", "Mon 2026-11-02 16:30"),
    # Europe/Berlin: summer time from Sunday 2026-03-29 to Sunday 2026-10-25.
    ("Berlin DST start, Sunday itself", GERMANY, datetime(2026, 3, 29, 8, 0, tzinfo=UTC),
     everyone_answers, AFTER_HOURS_PATH, "voicemail 102 standard", "Sun 2026-03-29 10:00 Europe/Berlin"),
    ("Berlin DST start, Monday 08:15 CEST", GERMANY, datetime(2026, 3, 30, 6, 15, tzinfo=UTC),
     everyone_answers, OPEN_PATH, "connected 101", "Mon 2026-03-30 08:15"),
    ("Berlin DST end, Monday 07:45 CET", GERMANY, datetime(2026, 10, 26, 6, 45, tzinfo=UTC),
     everyone_answers, AFTER_HOURS_PATH, "voicemail 102 standard", "Mon 2026-10-26 07:45"),
    ("Berlin DST end, Monday 16:45 CET", GERMANY, datetime(2026, 10, 26, 15, 45, tzinfo=UTC),
     everyone_answers, OPEN_PATH, "connected 101", "Mon 2026-10-26 16:45"),
    ("the Monday after German Unity Day", GERMANY, local(BERLIN, 2026, 10, 5, 10, 0), everyone_answers,
     OPEN_PATH, "connected 101", "within 08:00-17:00"),
    ("German Unity Day is closed", GERMANY, local(BERLIN, 2026, 10, 3, 10, 0), everyone_answers,
     AFTER_HOURS_PATH, "voicemail 102 standard", "German Unity Day (DE public holiday)"),
    ("after-hours template, any time", after_hours(), local(NY, 2026, 12, 22, 10, 30),
     everyone_answers, ["start", "after-hours-message", "voicemail-after-hours"],
     "voicemail 102 standard", 'playing "after-hours"'),
]  # fmt: skip


def _ending(step_action: object) -> str:
    if isinstance(step_action, ConnectedAction):
        return f"connected {step_action.extension}"
    if isinstance(step_action, VoicemailAction):
        return f"voicemail {step_action.mailbox} {step_action.greeting}"
    return repr(step_action)


@pytest.mark.parametrize(
    ("flow", "when", "respond", "visited", "ending", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_front_desk_routine(
    flow: FlowDocument,
    when: datetime,
    respond: Responder,
    visited: list[str],
    ending: str,
    reason: str,
) -> None:
    step, _ = run_call(flow, context(), when, respond)
    assert nodes(step) == visited
    assert _ending(step.action) == ending
    assert reason in notes(step)


def test_front_desk_rings_each_step_for_20_seconds() -> None:
    flow = front_desk()
    step, actions = run_call(flow, context(), local(NY, 2026, 12, 22, 10, 0), nobody_answers)
    rings = [a for a in actions if isinstance(a, RingAction)]
    assert [(r.extensions, r.timeout) for r in rings] == [(("101",), 20), (("102", "103"), 20)]
    assert isinstance(step.action, VoicemailAction) and step.action.greeting == "standard"


def test_after_hours_message_words_reach_the_engine() -> None:
    step = start(front_desk(), context(), local(NY, 2026, 12, 22, 20, 0))
    assert step.action.node == "after-hours-message"
    assert "closed right now" in getattr(step.action, "text", "")


def test_templates_pass_validation_for_an_office_with_the_roles() -> None:
    for flow in (front_desk(), after_hours(), template("front-desk"), GERMANY):
        assert find_problems(flow, acme_directory()) == []


def test_template_names_missing_roles_in_plain_words() -> None:
    empty = StaticDirectory.build({"101": "Someone"})
    problems = find_problems(front_desk(), empty)
    assert (
        'flow "front-desk" node "ring-office-manager": target role "office_manager": nobody '
        "holds this role; assign someone" in problems
    )
    assert any('node "voicemail-service-manager": mailbox of role "service_manager"' in p
               for p in problems)  # fmt: skip


def test_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="front-desk"):
        template("nope")


def test_a_template_without_holidays_is_open_on_christmas() -> None:
    flow = front_desk(country=None)
    step, _ = run_call(flow, context(), local(NY, 2026, 12, 25, 10, 0), everyone_answers)
    assert nodes(step) == OPEN_PATH
