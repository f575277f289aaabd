"""The technician shield on live calls, in memory (clock moved by hand): a call to a
technician's extension rings it only for a co-worker or a caller whose service request the
technician is working on right now; every other call goes into the front-desk flow. The
decision and its reason are on the CDR.

Outside callers arrive unauthenticated from loopback (the tenant's
``allow_unauthenticated_loopback``), as trunk calls do until trunks exist; what the caller
lookup (tickets/) found is handed to the engine through its lookup callback, answering
later like the real one (which runs off the event loop)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from inmemory import SDP_A, SDP_B, Net, Phone, make_directory, with_main_number

from frontdesk.pbx.flows import TenantRouting
from frontdesk.routing.context import CallerFacts, OpenRequest
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.templates import front_desk
from frontdesk.sip.message import Request, Response

OPEN = datetime(2026, 11, 24, 15, 30, tzinfo=UTC).timestamp()  # Tuesday 10:30 in New York
STAFF = {"101": "pw101", "102": "pw102", "103": "pw103", "201": "pw201", "301": "pw301"}
OUTSIDE = "+12125550147"
TECH_USER = 42


def shield_net() -> Net:
    directory = make_directory(STAFF, ring_timeout=20, trusted_loopback=True)
    with_main_number(directory)
    names = {"101": "Office Manager", "102": "Service Manager", "103": "Service Coordinator",
             "201": "Technician One", "301": "Dispatcher"}
    roles = {"office_manager": ["101"], "service_manager": ["102"],
             "service_coordinator": ["103"], "technician": ["201"]}
    directory.routing[1] = TenantRouting(front_desk(), StaticDirectory.build(
        names, roles=roles, mailboxes=["102"], owners={"201": TECH_USER}))
    return Net(directory, wall_offset=OPEN - 1000.0)


class Lookup:
    """Stands where tickets' caller lookup plugs in: answers with ``facts`` when ``answer``
    is called (the real one answers from a worker thread, later)."""

    def __init__(self, facts: CallerFacts) -> None:
        self.facts = facts
        self.pending: list[Callable[[CallerFacts], None]] = []
        self.asked: list[str] = []

    def __call__(self, tenant_id: int, caller: str, reply: Callable[[CallerFacts], None]) -> None:
        self.asked.append(caller)
        self.pending.append(reply)

    def answer(self, net: Net) -> None:
        for reply in self.pending:
            reply(self.facts)
        self.pending.clear()
        net.deliver()


@pytest.fixture
def office() -> tuple[Net, dict[str, Phone]]:
    net = shield_net()
    phones = {n: Phone(net, n, pw, 7200 + i) for i, (n, pw) in enumerate(STAFF.items())}
    for number in ("101", "102", "103", "201"):
        register = phones[number].request("REGISTER", number)
        register.headers.add("Expires", "3600")
        net.send(register, phones[number].peer)  # trusted from loopback: no challenge
        assert phones[number].last(Response).status == 200
    return net, phones


def invites(phone: Phone) -> list[Request]:
    seen: dict[str, Request] = {}
    for m in phone.received():
        if isinstance(m, Request) and m.method == "INVITE":
            seen.setdefault(m.top_via.branch or "", m)
    return list(seen.values())


def call(net: Net, number: str, to: str, port: int = 7300) -> Phone:
    """An unauthenticated call from ``number`` (an outside caller unless it is an extension)."""
    caller = Phone(net, number, "", port)
    net.send(caller.request("INVITE", to, body=SDP_A), caller.peer)
    return caller


def with_lookup(net: Net, facts: CallerFacts) -> Lookup:
    lookup = Lookup(facts)
    net.engine.flows.lookup = lookup
    net.engine.flows.clock = lambda: net.now
    return lookup


def answer(net: Net, phone: Phone) -> dict[str, Any]:
    phone.respond(invites(phone)[0], 200, SDP_B)
    return net.cdrs[-1]


def request_of(*, working: bool) -> CallerFacts:
    return CallerFacts(contact_id="7", contact_name="Hank Scorpio", company_id="3",
                       company_name="Globex", open_requests=(OpenRequest(
                           id="SR-0042", title="Printer broken", assignee_user_id=TECH_USER,
                           assignee_extension="201", working_now=working),))


def test_a_co_worker_rings_the_technician_directly(office: tuple[Net, dict[str, Phone]]) -> None:
    net, phones = office
    lookup = with_lookup(net, CallerFacts())
    call(net, "301", "201")
    assert lookup.asked == []  # a co-worker needs no lookup
    assert len(invites(phones["201"])) == 1 and invites(phones["101"]) == []
    record = answer(net, phones["201"])
    assert (record["callee"], record["callee_answered_by"]) == ("201", "201")
    assert record["extra"]["shield"] == {
        "technician": "201", "decision": "let through", "request": None,
        "reason": "let through: caller 301 (Dispatcher) is a co-worker"}
    assert [s["node"] for s in record["path"]][:2] == ["shield", "@direct"]


def test_an_unknown_outside_caller_is_shielded_into_the_front_desk_flow(
        office: tuple[Net, dict[str, Phone]]) -> None:
    net, phones = office
    lookup = with_lookup(net, CallerFacts())
    call(net, OUTSIDE, "201")
    assert lookup.asked == [OUTSIDE] and invites(phones["201"]) == []  # waits for the lookup
    lookup.answer(net)
    assert invites(phones["201"]) == [] and len(invites(phones["101"])) == 1
    record = answer(net, phones["101"])
    assert (record["caller"], record["callee"], record["callee_answered_by"]) == (
        OUTSIDE, "201", "101")
    assert record["extra"]["shield"]["decision"] == "shielded"
    assert record["extra"]["shield"]["reason"] == f"shielded: unknown caller {OUTSIDE}"
    nodes = [s["node"] for s in record["path"]]
    assert nodes[:4] == ["shield", "start", "business-hours", "ring-office-manager"]
    assert 'goes to flow "front-desk"' in record["path"][0]["note"]


def test_a_caller_whose_request_the_technician_works_on_now_rings_through(
        office: tuple[Net, dict[str, Phone]]) -> None:
    net, phones = office
    lookup = with_lookup(net, request_of(working=True))
    call(net, OUTSIDE, "201")
    lookup.answer(net)
    assert len(invites(phones["201"])) == 1 and invites(phones["101"]) == []
    record = answer(net, phones["201"])
    shield = record["extra"]["shield"]
    assert shield["decision"] == "let through" and shield["request"] == "SR-0042"
    assert shield["reason"] == (
        f'let through: {OUTSIDE} (Hank Scorpio, Globex) has service request #SR-0042 '
        '"Printer broken", which 201 (Technician One) is working on right now')


def test_a_request_assigned_but_not_worked_on_now_is_shielded(
        office: tuple[Net, dict[str, Phone]]) -> None:
    net, phones = office
    lookup = with_lookup(net, request_of(working=False))
    call(net, OUTSIDE, "201")
    lookup.answer(net)
    assert invites(phones["201"]) == [] and len(invites(phones["101"])) == 1
    phones["101"].respond(invites(phones["101"])[0], 486)  # busy: on to the service team
    assert invites(phones["201"]) == [] and len(invites(phones["102"])) == 1
    record = answer(net, phones["102"])
    assert record["extra"]["shield"]["decision"] == "shielded"
    assert "is assigned to 201 (Technician One) but not being worked on right now" in (
        record["extra"]["shield"]["reason"])


def test_a_let_through_call_rings_like_any_direct_call(
        office: tuple[Net, dict[str, Phone]]) -> None:
    """Busy answers busy, no answer ends as for every extension (their voicemail when the
    media endpoint runs; 480 here, without one) — and the CDR keeps the decision."""
    net, phones = office
    caller = call(net, "301", "201")
    phones["201"].respond(invites(phones["201"])[0], 486)
    assert caller.last(Response, status=486) is not None
    busy = net.cdrs[-1]
    assert busy["disposition"] == "busy" and busy["extra"]["shield"]["decision"] == "let through"
    assert invites(phones["101"]) == []  # a let-through call never enters the flow
    caller = call(net, "301", "201", port=7301)
    phones["201"].respond(invites(phones["201"])[-1], 180)
    net.advance(21)  # the extension's 20 s are up
    assert phones["201"].last(Request, method="CANCEL") is not None
    assert caller.last(Response, status=480) is not None
    missed = net.cdrs[-1]
    assert missed["disposition"] == "no-answer" and missed["callee"] == "201"
    assert [s["node"] for s in missed["path"]] == ["shield", "@direct"]
    assert missed["extra"]["shield"]["decision"] == "let through"


def test_other_extensions_are_not_shielded(office: tuple[Net, dict[str, Phone]]) -> None:
    net, phones = office
    lookup = with_lookup(net, CallerFacts())
    call(net, OUTSIDE, "102")
    assert lookup.asked == [] and len(invites(phones["102"])) == 1
    record = answer(net, phones["102"])
    assert "shield" not in (record.get("extra") or {})


def test_a_tenant_without_a_main_number_still_shields_into_its_flow() -> None:
    """No main number, but a published flow (here the front-desk template) and a technician:
    a shielded caller enters the flow; the CDR says which flow took it and that the tenant
    has no main number. Dialling an empty main number never starts the flow."""
    net = shield_net()
    tenant = dataclasses.replace(net.engine.directory.tenants[1], main_number="")
    d = net.engine.directory
    d.tenants[1] = d.by_domain[tenant.sip_domain] = d.default = tenant
    d.routing[1].label = 'flow "front-desk" (the built-in template; nothing published yet)'
    phones = {n: Phone(net, n, pw, 7400 + i) for i, (n, pw) in enumerate(STAFF.items())}
    for number in ("101", "102", "103", "201"):
        register = phones[number].request("REGISTER", number)
        register.headers.add("Expires", "3600")
        net.send(register, phones[number].peer)
    lookup = with_lookup(net, CallerFacts())
    call(net, OUTSIDE, "201")
    lookup.answer(net)
    assert invites(phones["201"]) == [] and len(invites(phones["101"])) == 1
    record = answer(net, phones["101"])
    shield = record["extra"]["shield"]
    assert shield["decision"] == "shielded"
    assert shield["entered"] == (
        'flow "front-desk" (the built-in template; nothing published yet) '
        "(the tenant has no main number)"
    )
    assert [s["node"] for s in record["path"]][:2] == ["shield", "start"]
    call(net, "301", "201", port=7301)  # a co-worker still rings the technician
    assert len(invites(phones["201"])) == 1
    assert "entered" not in answer(net, phones["201"])["extra"]["shield"]
