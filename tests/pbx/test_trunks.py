"""SIP trunks in the engine, in memory (STYLE #6): a carrier at its own address delivers
calls to DIDs (main number -> the flow, extension -> the phone, unknown -> 404) without a
challenge, anyone else is challenged; extensions dial out through the trunk, the carrier's
401/407 is answered once with digest credentials it can verify, a second one fails the call;
a flow's transfer to an outside number goes out through the trunk. The clock moves by hand."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator

import pytest
from inmemory import SDP_A, SDP_B, Net, Phone
from test_engine_flows import CLOSED, OPEN, front_desk_net, invites

from frontdesk.pbx.flows import TenantRouting
from frontdesk.pbx.trunk_model import TrunkInfo
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.templates import front_desk
from frontdesk.routing.validate import parse_flow
from frontdesk.sip.auth import DigestAuthenticator, compute_ha1, parse_credentials
from frontdesk.sip.message import Request, Response, make_response, parse_message
from frontdesk.sip.peer import Peer

CARRIER_HOST, CARRIER_PORT = "127.0.0.9", 9000
TRUNK = TrunkInfo(
    tenant_id=1, name="carrier", host=CARRIER_HOST, port=CARRIER_PORT, transport="udp",
    username="acme-trunk", password="carrier-pw", caller_id="+15551230000", region="US",
    sources=(ipaddress.ip_network("127.0.0.9/32"),),
    dids={"+15551230000": "main", "+15551230101": "ext:101"}, dial_rules=("9", "+"))
REALM = "carrier.example"


class Carrier:
    """The carrier's side of the trunk: sends INVITEs from its address, answers ours."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.peer = Peer("udp", CARRIER_HOST, CARRIER_PORT)
        self.auth = DigestAuthenticator(b"k" * 32, algorithms=("SHA-256", "MD5"))

    def invite(self, did: str, caller: str = "2125550147", source: Peer | None = None) -> Request:
        lines = [
            f"INVITE sip:{did}@127.0.0.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP {CARRIER_HOST}:{CARRIER_PORT};branch=z9hG4bKcar{did[-4:]};rport",
            f'From: "Outside Caller" <sip:{caller}@{CARRIER_HOST}>;tag=car1',
            f"To: <sip:{did}@127.0.0.1>",
            f"Call-ID: carrier-{did}-{caller}",
            "CSeq: 1 INVITE",
            f"Contact: <sip:{caller}@{CARRIER_HOST}:{CARRIER_PORT}>",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            f"Content-Length: {len(SDP_A)}",
        ]
        req = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + SDP_A)
        assert isinstance(req, Request)
        self.net.send(req, source or self.peer)
        return req

    def received(self, port: int = CARRIER_PORT) -> list[Request | Response]:
        return self.net.inbox.get(port, [])

    def invites(self) -> list[Request]:
        seen: dict[str, Request] = {}
        for m in self.received():
            if isinstance(m, Request) and m.method == "INVITE":
                seen.setdefault(m.top_via.branch or "", m)
        return list(seen.values())

    def respond(self, req: Request, status: int, headers: tuple[tuple[str, str], ...] = (),
                body: bytes = b"") -> None:
        resp = make_response(req, status, to_tag="carrier-tag", body=body)
        for name, value in headers:
            resp.headers.add(name, value)
        if body:
            resp.headers.add("Content-Type", "application/sdp")
            resp.headers.add("Contact", f"<sip:far@{CARRIER_HOST}:{CARRIER_PORT}>")
        self.net.send(resp, self.peer)

    def challenge(self, req: Request, status: int = 401) -> None:
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        values = self.auth.challenge(REALM, self.net.now)
        self.respond(req, status, tuple((name, v) for v in values[:1]))  # SHA-256 first


def with_trunk(net: Net, trunk: TrunkInfo = TRUNK) -> Net:
    net.directory.trunks = (trunk,)
    return net


@pytest.fixture
def office() -> Iterator[tuple[Net, dict[str, Phone], Carrier]]:
    net = with_trunk(front_desk_net(OPEN))
    phones = {n: Phone(net, n, f"pw{n}", 7100 + i)
              for i, n in enumerate(("101", "102", "103", "201", "301"))}
    for number in ("101", "102", "103"):
        assert phones[number].register().status == 200
    yield net, phones, Carrier(net)
    assert net.engine.stats["internal_errors"] == 0  # every bug of ours is contained: none


def test_the_main_did_walks_the_flow_without_a_challenge(office) -> None:  # type: ignore[no-untyped-def]
    net, phones, carrier = office
    carrier.invite("+15551230000")
    statuses = [m.status for m in carrier.received() if isinstance(m, Response)]
    assert 401 not in statuses and 407 not in statuses
    [ringing] = invites(phones["101"])  # the front desk's first step: the office manager
    phones["101"].respond(ringing, 200, SDP_B)
    assert [m.status for m in carrier.received() if isinstance(m, Response)][-1] == 200
    record = net.cdrs[-1]
    assert record["caller"] == "+12125550147"  # national caller ID normalised to E.164
    assert record["callee"] == "100" and record["callee_answered_by"] == "101"
    assert record["extra"]["flow"] == "front-desk"
    assert record["extra"]["trunk"] == {"name": "carrier", "direction": "in",
                                        "number": "+15551230000"}


def test_a_did_mapped_to_an_extension_rings_it(office) -> None:  # type: ignore[no-untyped-def]
    _net, phones, carrier = office
    carrier.invite("5551230101")  # national form of +15551230101
    assert len(invites(phones["101"])) == 1 and invites(phones["102"]) == []


def test_an_unknown_did_is_refused_with_the_reason(office) -> None:  # type: ignore[no-untyped-def]
    net, phones, carrier = office
    carrier.invite("+15559999999")
    [refusal] = [m for m in carrier.received() if isinstance(m, Response) and m.status >= 200]
    assert refusal.status == 404
    assert "+15559999999 is not a DID of trunk carrier" in refusal.reason
    assert invites(phones["101"]) == [] and net.engine.calls.calls == {}


def test_an_invite_from_another_address_is_challenged(office) -> None:  # type: ignore[no-untyped-def]
    net, phones, carrier = office
    carrier.invite("+15551230000", source=Peer("udp", "127.0.0.1", 9100))
    [challenge] = [m for m in carrier.received(9100) if isinstance(m, Response) and m.status >= 200]
    assert challenge.status == 407
    assert invites(phones["101"]) == [] and net.engine.calls.calls == {}


def _verified(carrier: Carrier, retry: Request, header: str) -> bool:
    creds = parse_credentials(retry.headers.get(header) or "")
    assert creds is not None and creds.username == "acme-trunk"
    ha1 = compute_ha1("acme-trunk", REALM, "carrier-pw", creds.algorithm)
    result = carrier.auth.verify(creds, "INVITE", REALM, carrier.net.now, lambda u, a: ha1,
                                 request_uri=retry.uri)
    return result.ok


@pytest.mark.parametrize("status", [401, 407])
def test_dialling_out_answers_the_carriers_challenge_once(office, status: int) -> None:  # type: ignore[no-untyped-def]
    net, phones, carrier = office
    phones["101"].invite("912125550147")  # 9 for an outside line, then a national number
    [first] = carrier.invites()
    assert first.uri == f"sip:+12125550147@{CARRIER_HOST}:{CARRIER_PORT}"
    assert first.from_.uri.user == "+15551230000"  # the trunk's caller ID
    carrier.challenge(first, status)
    [_, retry] = carrier.invites()
    assert retry.cseq.number == first.cseq.number + 1 and retry.call_id == first.call_id
    header = "Authorization" if status == 401 else "Proxy-Authorization"
    assert _verified(carrier, retry, header)
    acks = [m for m in carrier.received() if isinstance(m, Request) and m.method == "ACK"]
    assert acks, "the challenge (a final non-2xx) is ACKed"
    carrier.respond(retry, 200, body=SDP_B)
    assert phones["101"].last(Response, status=200) is not None
    record = net.cdrs[-1]
    assert record["callee"] == "+12125550147" and record["answered_at"] is not None
    assert record["extra"]["trunk"] == {"name": "carrier", "direction": "out",
                                        "number": "+12125550147"}


def test_a_second_challenge_fails_the_call(office) -> None:  # type: ignore[no-untyped-def]
    net, phones, carrier = office
    phones["101"].invite("+442079460958")
    [first] = carrier.invites()
    assert first.uri.startswith("sip:+442079460958@")
    carrier.challenge(first)
    [_, retry] = carrier.invites()
    carrier.challenge(retry)
    assert len(carrier.invites()) == 2  # answered once, not looped
    final = [m.status for m in phones["101"].received()
             if isinstance(m, Response) and m.status >= 300 and m.status not in (407,)]
    assert final and final[-1] >= 400
    assert net.engine.calls.calls == {}


def test_a_number_no_rule_matches_is_not_found(office) -> None:  # type: ignore[no-untyped-def]
    _net, phones, carrier = office
    phones["101"].invite("5550147")  # neither an extension nor a dial rule
    assert phones["101"].last(Response, status=404) is not None
    assert carrier.invites() == []


def test_a_flow_transfer_to_an_outside_number_goes_through_the_trunk() -> None:
    data = front_desk().to_json()
    data["nodes"]["voicemail-after-hours"] = {"type": "transfer", "number": "+15559870000"}
    net = with_trunk(front_desk_net(CLOSED))
    names = {"101": "Office Manager", "102": "Service Manager", "103": "Service Coordinator"}
    roles = {"office_manager": ["101"], "service_manager": ["102"],
             "service_coordinator": ["103"]}
    net.directory.routing[1] = TenantRouting(
        parse_flow(data), StaticDirectory.build(names, roles=roles, mailboxes=["102"]))
    carrier = Carrier(net)
    carrier.invite("+15551230000")  # after hours: the flow sends it to the answering service
    [out] = carrier.invites()
    assert out.uri == f"sip:+15559870000@{CARRIER_HOST}:{CARRIER_PORT}"
    carrier.challenge(out)
    [_, retry] = carrier.invites()
    carrier.respond(retry, 200, body=SDP_B)
    answers = [m for m in net.inbox.get(CARRIER_PORT, [])
               if isinstance(m, Response) and m.status == 200]
    assert answers, "the outside caller is connected"
    assert net.engine.stats["internal_errors"] == 0
    assert net.cdrs[-1]["extra"]["trunk"] == {"name": "carrier", "direction": "in",
                                              "number": "+15551230000",
                                              "forwarded_to": "+15559870000"}


def test_without_a_trunk_the_transfer_is_still_refused() -> None:
    data = front_desk().to_json()
    data["nodes"]["voicemail-after-hours"] = {"type": "transfer", "number": "+15559870000"}
    net = front_desk_net(CLOSED)
    net.directory.tenants[1] = dataclasses.replace(net.directory.tenants[1],
                                                   allow_unauthenticated_loopback=True)
    net.directory.by_domain["acme.test"] = net.directory.default = net.directory.tenants[1]
    net.directory.routing[1] = TenantRouting(parse_flow(data), StaticDirectory.build({}))
    Carrier(net).invite("100", source=Peer("udp", "127.0.0.1", 9200))
    refusal = [m for m in net.inbox.get(9200, []) if isinstance(m, Response)][-1]
    assert refusal.status == 480 and "no outside lines" in refusal.reason
    assert net.inbox.get(CARRIER_PORT) is None


def test_a_did_to_a_technician_meets_the_shield() -> None:
    trunk = dataclasses.replace(TRUNK, dids={**TRUNK.dids, "+15551230201": "ext:201"})
    net = with_trunk(front_desk_net(OPEN), trunk)
    phones = {n: Phone(net, n, f"pw{n}", 7200 + i) for i, n in enumerate(("101", "201"))}
    for phone in phones.values():
        assert phone.register().status == 200
    Carrier(net).invite("+15551230201")  # an outside caller with no request being worked
    assert invites(phones["201"]) == []  # shielded: the technician is not interrupted
    [front_desk_ring] = invites(phones["101"])
    phones["101"].respond(front_desk_ring, 200, SDP_B)
    record = net.cdrs[-1]
    assert record["caller"] == "+12125550147"
    assert record["extra"]["shield"]["decision"] == "shielded"
    assert record["extra"]["trunk"]["number"] == "+15551230201"


def test_a_bye_the_carrier_challenges_is_sent_again_with_credentials(office) -> None:  # type: ignore[no-untyped-def]
    net, phones, carrier = office
    invite = phones["101"].invite("+12125550147")
    [first] = carrier.invites()
    carrier.challenge(first)
    [_, retry] = carrier.invites()
    carrier.respond(retry, 200, body=SDP_B)
    ok = phones["101"].last(Response, status=200)
    bye = phones["101"].in_dialog("BYE", ok, ok.to.tag, f"sip:x@{CARRIER_HOST}",
                                  invite.call_id, invite.cseq.number + 1)
    net.send(bye, phones["101"].peer)
    [ours] = [m for m in carrier.received() if isinstance(m, Request) and m.method == "BYE"]
    carrier.challenge(ours, 407)
    byes = [m for m in carrier.received() if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 2 and byes[1].cseq.number == ours.cseq.number + 1
    creds = parse_credentials(byes[1].headers.get("Proxy-Authorization") or "")
    assert creds is not None
    ha1 = compute_ha1("acme-trunk", REALM, "carrier-pw", creds.algorithm)
    assert carrier.auth.verify(creds, "BYE", REALM, net.now, lambda u, a: ha1).ok
    carrier.challenge(byes[1], 407)  # answered once only
    assert len([m for m in carrier.received()
                if isinstance(m, Request) and m.method == "BYE"]) == 2


def test_a_carrier_invite_out_of_hops_is_refused(office) -> None:  # type: ignore[no-untyped-def]
    net, phones, carrier = office
    lines = [
        "INVITE sip:+15551230000@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP {CARRIER_HOST}:{CARRIER_PORT};branch=z9hG4bKhops;rport",
        f"From: <sip:2125550147@{CARRIER_HOST}>;tag=hops",
        "To: <sip:+15551230000@127.0.0.1>",
        "Call-ID: carrier-hops",
        "CSeq: 1 INVITE",
        "Max-Forwards: 0",
        "Content-Length: 0",
    ]
    net.send(("\r\n".join(lines) + "\r\n\r\n").encode(), carrier.peer)
    final = [m for m in carrier.received() if isinstance(m, Response) and m.status >= 200]
    assert [m.status for m in final] == [483]
    assert invites(phones["101"]) == []
