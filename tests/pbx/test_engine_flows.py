"""Calls to the main number walk the tenant's flow (routing/) through the live B2BUA:
the front-desk routine rings the office manager, then the service team; the path taken is
stored on the CDR. In memory, with the clock moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from inmemory import SDP_B, Net, Phone, make_directory, with_main_number

from frontdesk.pbx.flows import TenantRouting
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.templates import front_desk
from frontdesk.sip.message import Request, Response

# Tuesday 2026-11-24 10:30 in New York (open) and 20:30 (closed)
OPEN = datetime(2026, 11, 24, 15, 30, tzinfo=UTC).timestamp()
CLOSED = datetime(2026, 11, 25, 1, 30, tzinfo=UTC).timestamp()
STAFF = {"101": "pw101", "102": "pw102", "103": "pw103", "201": "pw201", "301": "pw301"}


def front_desk_net(at: float) -> Net:
    directory = make_directory(STAFF, ring_timeout=20)
    with_main_number(directory)
    names = {"101": "Office Manager", "102": "Service Manager", "103": "Service Coordinator",
             "201": "Technician One", "301": "Caller"}
    roles = {"office_manager": ["101"], "service_manager": ["102"],
             "service_coordinator": ["103"], "technician": ["201"]}
    directory.routing[1] = TenantRouting(
        front_desk(), StaticDirectory.build(names, roles=roles, mailboxes=["102"]))
    return Net(directory, wall_offset=at - 1000.0)


def invites(phone: Phone) -> list[Request]:
    """INVITEs the phone received, retransmissions (same branch) counted once."""
    seen: dict[str, Request] = {}
    for m in phone.received():
        if isinstance(m, Request) and m.method == "INVITE":
            seen.setdefault(m.top_via.branch or "", m)
    return list(seen.values())


@pytest.fixture
def office() -> tuple[Net, dict[str, Phone]]:
    net = front_desk_net(OPEN)
    phones = {n: Phone(net, n, pw, 7000 + i) for i, (n, pw) in enumerate(STAFF.items())}
    for number in ("101", "102", "103"):
        assert phones[number].register().status == 200
    return net, phones


def test_office_manager_rings_first_and_answers(office: tuple[Net, dict[str, Phone]]) -> None:
    net, phones = office
    phones["301"].invite("100")
    assert len(invites(phones["101"])) == 1
    assert invites(phones["102"]) == [] and invites(phones["103"]) == []
    om_invite = invites(phones["101"])[0]
    phones["101"].respond(om_invite, 200, SDP_B)
    assert phones["301"].last(Response, status=200) is not None
    record = net.cdrs[-1]
    assert record["callee"] == "100" and record["callee_answered_by"] == "101"
    nodes = [step["node"] for step in record["path"]]
    assert nodes[:3] == ["start", "business-hours", "ring-office-manager"]
    assert record["extra"]["flow"] == "front-desk"


def test_no_answer_moves_to_the_service_team(office: tuple[Net, dict[str, Phone]]) -> None:
    net, phones = office
    phones["301"].invite("100")
    phones["101"].respond(invites(phones["101"])[0], 180)
    net.advance(21)  # the office manager's 20 s are up
    assert phones["101"].last(Request, method="CANCEL") is not None
    assert len(invites(phones["102"])) == 1 and len(invites(phones["103"])) == 1
    assert 480 not in [m.status for m in phones["301"].received() if isinstance(m, Response)]
    phones["102"].respond(invites(phones["102"])[0], 180)
    coordinator_invite = invites(phones["103"])[0]
    phones["103"].respond(coordinator_invite, 200, SDP_B)
    assert phones["102"].last(Request, method="CANCEL") is not None
    record = net.cdrs[-1]
    assert record["callee_answered_by"] == "103"
    assert [s["node"] for s in record["path"]][-2:] == ["ring-service-team", "ring-service-team"]


def test_busy_office_manager_also_moves_on(office: tuple[Net, dict[str, Phone]]) -> None:
    _, phones = office
    phones["301"].invite("100")
    phones["101"].respond(invites(phones["101"])[0], 486)
    assert len(invites(phones["102"])) == 1


def test_nobody_answers_and_no_voicemail_gives_480_with_the_path(
    office: tuple[Net, dict[str, Phone]],
) -> None:
    net, phones = office
    phones["301"].invite("100")
    net.advance(45)
    statuses = [m.status for m in phones["301"].received() if isinstance(m, Response)]
    assert 480 in statuses
    record = net.cdrs[-1]
    assert record["disposition"] in ("no-answer", "failed")
    assert any(step["type"] == "voicemail" for step in record["path"])


def test_after_hours_never_rings_the_office() -> None:
    net = front_desk_net(CLOSED)
    caller, om = Phone(net, "301", "pw301", 7101), Phone(net, "101", "pw101", 7102)
    om.register()
    caller.invite("100")
    assert invites(om) == []
    assert 480 in [m.status for m in caller.received() if isinstance(m, Response)]


def test_other_numbers_are_not_routed(office: tuple[Net, dict[str, Phone]]) -> None:
    _, phones = office
    phones["301"].invite("102")  # an extension dialled directly rings only that extension
    assert len(invites(phones["102"])) == 1 and invites(phones["101"]) == []
