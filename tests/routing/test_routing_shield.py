"""The technician shield, table-driven: who reaches a technician directly, who goes to the
front desk, and the reason recorded on the CDR."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from routing_support import (
    NY,
    USER_IDS,
    context,
    everyone_answers,
    local,
    nobody_answers,
    nodes,
    run_call,
)

from frontdesk.routing.actions import (
    ConnectedAction,
    RingAction,
    VoicemailAction,
    cdr_record,
)
from frontdesk.routing.context import CallerFacts, OpenRequest, facts_from_lookup
from frontdesk.routing.evaluate import DIRECT, advance
from frontdesk.routing.shield import decide, start_call
from frontdesk.routing.templates import front_desk

TECH = "201"
TECH_USER = USER_IDS["201"]
OTHER_TECH_USER = USER_IDS["202"]
OPEN = local(NY, 2026, 12, 22, 10, 30)
CLOSED = local(NY, 2026, 12, 22, 19, 0)
HOLIDAY = local(NY, 2026, 12, 25, 10, 30)
DST_MONDAY = local(NY, 2026, 3, 9, 8, 30)

ACME = CallerFacts(contact_id="7", contact_name="Dana Smith", company_id="3",
                   company_name="Acme Corp")  # fmt: skip


def _facts(*requests: OpenRequest) -> CallerFacts:
    return CallerFacts(
        contact_id=ACME.contact_id,
        contact_name=ACME.contact_name,
        company_id=ACME.company_id,
        company_name=ACME.company_name,
        open_requests=requests,
    )


WORKED_BY_TECH = OpenRequest("SR-0042", "Printer down", assignee_user_id=TECH_USER,
                             working_now=True, working_by=(TECH_USER,))  # fmt: skip
WORKED_BY_EXTENSION = OpenRequest("SR-0043", "Server", assignee_extension=TECH, working_now=True)
HELPING_OUT = OpenRequest("SR-0044", "Network", assignee_user_id=OTHER_TECH_USER,
                          working_now=True, working_by=(OTHER_TECH_USER, TECH_USER))  # fmt: skip
ASSIGNED_IDLE = OpenRequest("SR-0045", "Backup", assignee_user_id=TECH_USER, working_now=False)
OTHER_TECHS = OpenRequest("SR-0046", "Laptop", assignee_user_id=OTHER_TECH_USER,
                          working_now=True, working_by=(OTHER_TECH_USER,))  # fmt: skip

SHIELD_CASES = [
    # id, caller, facts, let through?, reason
    ("co-worker on an extension", "102", CallerFacts(), True,
     "let through: caller 102 (Service Manager) is a co-worker"),
    ("co-worker on their mobile", "+15550001111", CallerFacts(is_coworker=True), True,
     "let through: caller +15550001111 is a co-worker"),
    ("known caller, request being worked by this technician", "+15551234567",
     _facts(WORKED_BY_TECH), True,
     'let through: +15551234567 (Dana Smith, Acme Corp) has service request #SR-0042 "Printer '
     'down", which 201 (Technician One) is working on right now'),
    ("request assigned by extension, being worked", "+15551234567", _facts(WORKED_BY_EXTENSION),
     True, "#SR-0043"),
    ("technician helping on someone else's request right now", "+15551234567",
     _facts(HELPING_OUT), True, "#SR-0044"),
    ("known caller, request assigned but not worked now", "+15551234567", _facts(ASSIGNED_IDLE),
     False, 'shielded: service request #SR-0045 "Backup" of +15551234567 (Dana Smith, Acme '
            'Corp) is assigned to 201 (Technician One) but not being worked on right now'),
    ("known caller, request of another technician", "+15551234567", _facts(OTHER_TECHS), False,
     "has no service request that 201 (Technician One) is working on right now"),
    ("known caller without requests", "+15551234567", ACME, False,
     "shielded: +15551234567 (Dana Smith, Acme Corp) has no service request that 201"),
    ("unknown caller", "+15557654321", CallerFacts(), False,
     "shielded: unknown caller +15557654321"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("caller", "facts", "let_through", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in SHIELD_CASES],
)
def test_shield_decision(caller: str, facts: CallerFacts, let_through: bool, reason: str) -> None:
    decision = decide(context(caller, to=TECH, facts=facts))
    assert decision is not None
    assert decision.let_through is let_through
    assert reason in decision.reason
    assert decision.technician == TECH


WHEN = [("inside hours", OPEN), ("outside hours", CLOSED), ("holiday", HOLIDAY),
        ("DST Monday", DST_MONDAY)]  # fmt: skip


@pytest.mark.parametrize(("when"), [pytest.param(t, id=i) for i, t in WHEN])
@pytest.mark.parametrize(
    ("caller", "facts", "let_through", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in SHIELD_CASES],
)
def test_let_through_rings_the_technician_at_any_hour_shielded_calls_take_the_front_desk(
    caller: str, facts: CallerFacts, let_through: bool, reason: str, when: datetime
) -> None:
    flow = front_desk()
    step, actions = run_call(flow, context(caller, to=TECH, facts=facts), when, everyone_answers)
    record = cdr_record(step.state)
    assert record["extra"]["shield"]["decision"] == ("let through" if let_through else "shielded")
    assert reason in record["extra"]["shield"]["reason"]
    assert record["path"][0]["node"] == "shield"
    if let_through:
        assert actions[0] == RingAction(DIRECT, (TECH,), 20)
        assert step.action == ConnectedAction(DIRECT, TECH)
        return
    assert all(TECH not in getattr(a, "extensions", ()) for a in actions)
    if when in (OPEN, DST_MONDAY):
        assert nodes(step)[1:] == ["start", "business-hours", "ring-office-manager"]
        assert step.action == ConnectedAction("ring-office-manager", "101")
    else:
        assert nodes(step)[-1] == "voicemail-after-hours"


def test_technician_who_does_not_answer_gets_a_voicemail() -> None:
    ctx = context("102", to=TECH)
    step, _ = run_call(front_desk(), ctx, OPEN, nobody_answers)
    assert step.action == VoicemailAction(DIRECT, TECH, "unavailable")
    busy = advance(front_desk(), start_call(front_desk(), ctx, OPEN).state, "busy", ctx, OPEN)
    assert busy.action == VoicemailAction(DIRECT, TECH, "busy")


def test_other_extensions_ring_directly_without_a_shield() -> None:
    step = start_call(front_desk(), context("+15557654321", to="102"), CLOSED)
    assert step.action == RingAction(DIRECT, ("102",), 20)
    assert step.state.shield is None
    assert decide(context("+15557654321", to="102")) is None
    assert decide(context("+15557654321")) is None


def test_direct_ring_seconds_come_from_the_context() -> None:
    step = start_call(front_desk(), context("102", to=TECH, direct_ring_seconds=35), OPEN)
    assert step.action == RingAction(DIRECT, (TECH,), 35)


def test_main_number_calls_have_no_shield_on_the_cdr() -> None:
    step, _ = run_call(front_desk(), context(), OPEN, everyone_answers)
    record = cdr_record(step.state)
    assert "shield" not in record["extra"] and record["extra"]["flow"] == "front-desk"
    assert [e["node"] for e in record["path"]][:2] == ["start", "business-hours"]


def _lookup(**changes: object) -> SimpleNamespace:
    request = SimpleNamespace(ref="SR-0042", title="Printer down", assignee_id=TECH_USER,
                              assignee_extension=TECH, assignee_working_on_it=True,
                              working_on_by=[TECH_USER])  # fmt: skip
    fields: dict[str, object] = {
        "is_coworker": False,
        "contacts": (SimpleNamespace(id=7, name="Dana Smith"),),
        "companies": (SimpleNamespace(id=3, name="Acme Corp"),),
        "open_requests": (request,),
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


def test_tickets_caller_lookup_becomes_caller_facts() -> None:
    facts = facts_from_lookup(_lookup())  # type: ignore[arg-type]
    assert facts == _facts(OpenRequest("SR-0042", "Printer down", TECH_USER, TECH, True,
                                       (TECH_USER,)))  # fmt: skip
    decision = decide(context("+15551234567", to=TECH, facts=facts))
    assert decision is not None and decision.let_through and decision.request_id == "SR-0042"
    unknown = facts_from_lookup(_lookup(contacts=(), companies=(), open_requests=()))  # type: ignore[arg-type]
    assert unknown == CallerFacts()
    coworker = facts_from_lookup(
        _lookup(is_coworker=True, contacts=(), companies=(), open_requests=())
    )  # type: ignore[arg-type]
    assert context("+15550001111", facts=coworker).caller_is_coworker
