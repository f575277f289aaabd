"""The engine's registrar and B2BUA, driven in memory with phones built from raw SIP."""

from __future__ import annotations

import pytest
from inmemory import SDP_A, SDP_B, Net, Phone, make_directory

from frontdesk.sip.message import Request, Response


@pytest.fixture
def net() -> Net:
    return Net(make_directory({"101": "pw101", "102": "pw102", "103": "pw103"}, ring_timeout=20))


def statuses(phone: Phone) -> list[int]:
    return [m.status for m in phone.received() if isinstance(m, Response)]


def requests(phone: Phone, method: str) -> list[Request]:
    return [m for m in phone.received() if isinstance(m, Request) and m.method == method]


def test_register_requires_auth_and_lists_contact(net: Net) -> None:
    phone = Phone(net, "101", "pw101", 6001)
    ok = phone.register()
    assert ok.status == 200
    assert "127.0.0.1:6001" in (ok.headers.get("Contact") or "")
    assert "expires=" in (ok.headers.get("Contact") or "")
    assert [k for k, _ in net.bindings] == ["upsert"]
    assert len(net.location.lookup(1, "101", net.now)) == 1


def test_wrong_password_and_unknown_user_look_the_same(net: Net) -> None:
    wrong = Phone(net, "101", "not-the-password", 6002)
    unknown = Phone(net, "999", "whatever", 6003)
    r1, r2 = wrong.register(), unknown.register()
    assert r1.status == r2.status == 401
    assert [n for n, _ in r1.headers] == [n for n, _ in r2.headers]
    assert r1.reason == r2.reason
    assert len(net.location) == 0


def test_repeated_failures_block_the_source(net: Net) -> None:
    scanner = Phone(net, "101", "guess", 6004)
    for _ in range(12):
        scanner.register()
    before = len(scanner.received())
    net.send(scanner.request("OPTIONS", "101"), scanner.peer)
    assert len(scanner.received()) == before  # silently dropped while blocked
    assert net.engine.stats["dropped_blocked"] >= 1


def test_unregister_removes_binding(net: Net) -> None:
    phone = Phone(net, "102", "pw102", 6005)
    phone.register()
    assert phone.register(expires=0).status == 200
    assert net.location.lookup(1, "102", net.now) == []


def setup_call(net: Net) -> tuple[Phone, Phone, Request, Request]:
    alice, bob = Phone(net, "101", "pw101", 6010), Phone(net, "102", "pw102", 6020)
    assert bob.register().status == 200
    bob.take()
    invite = alice.invite("102")
    assert 100 in statuses(alice)
    b_invite = bob.last(Request, method="INVITE")
    assert b_invite is not None and b_invite.body == SDP_A
    return alice, bob, invite, b_invite


def test_answered_call_then_caller_hangs_up(net: Net) -> None:
    alice, bob, invite, b_invite = setup_call(net)
    bob.respond(b_invite, 180)
    assert 180 in statuses(alice)
    bob.respond(b_invite, 200, SDP_B)
    ok = alice.last(Response, status=200)
    assert ok is not None and ok.body == SDP_B
    assert bob.last(Request, method="ACK") is not None
    # caller ACKs and hangs up
    a_tag = ok.to.tag
    ack = alice.in_dialog("ACK", ok, a_tag, str(ok.contacts[0].uri), invite.call_id,
                          invite.cseq.number)
    net.send(ack, alice.peer)
    bye = alice.in_dialog("BYE", ok, a_tag, str(ok.contacts[0].uri), invite.call_id,
                          invite.cseq.number + 1)
    net.send(bye, alice.peer)
    assert alice.last(Response).status == 200
    b_bye = bob.last(Request, method="BYE")
    assert b_bye is not None and b_bye.call_id == b_invite.call_id
    bob.respond(b_bye, 200)
    final = net.cdrs[-1]
    assert final["disposition"] == "answered" and final["hangup_side"] == "caller"
    assert final["caller"] == "101" and final["callee"] == "102"
    assert final["answered_at"] is not None and final["ended_at"] >= final["answered_at"]


def test_callee_hangs_up(net: Net) -> None:
    alice, bob, _, b_invite = setup_call(net)
    bob.respond(b_invite, 200, SDP_B)
    ack = bob.last(Request, method="ACK")
    bye = bob.in_dialog("BYE", ack, b_invite.from_.tag or "", str(b_invite.contacts[0].uri),
                        b_invite.call_id, 2)
    net.send(bye, bob.peer)
    assert alice.last(Request, method="BYE") is not None
    assert net.cdrs[-1]["hangup_side"] == "callee"


def test_busy_callee_gives_486(net: Net) -> None:
    alice, bob, _, b_invite = setup_call(net)
    bob.respond(b_invite, 486)
    assert 486 in statuses(alice)
    assert net.cdrs[-1]["disposition"] == "busy"


def test_no_answer_gives_480_and_cancels(net: Net) -> None:
    alice, bob, _, b_invite = setup_call(net)
    bob.respond(b_invite, 180)
    net.advance(19)
    assert 480 not in statuses(alice)
    net.advance(2)
    assert 480 in statuses(alice)
    cancel = bob.last(Request, method="CANCEL")
    assert cancel is not None and cancel.top_via.branch == b_invite.top_via.branch
    assert net.cdrs[-1]["disposition"] == "no-answer"
    assert net.cdrs[-1]["hangup_side"] == "system"


def test_caller_cancel_before_answer(net: Net) -> None:
    alice, bob, invite, b_invite = setup_call(net)
    bob.respond(b_invite, 180)
    cancel = Request("CANCEL", invite.uri, invite.headers.copy())
    cancel.headers.set("CSeq", f"{invite.cseq.number} CANCEL")
    cancel.headers.remove("Content-Type")
    cancel.body = b""
    net.send(cancel, alice.peer)
    assert 487 in statuses(alice)
    assert bob.last(Request, method="CANCEL") is not None
    assert net.cdrs[-1]["disposition"] == "cancelled"
    assert net.cdrs[-1]["hangup_side"] == "caller"


def test_absent_and_unknown_extensions(net: Net) -> None:
    alice = Phone(net, "101", "pw101", 6030)
    alice.invite("103")  # exists, not registered
    assert 480 in statuses(alice)
    alice.invite("555")  # does not exist
    assert 404 in statuses(alice)


def test_fork_to_all_contacts_and_cancel_the_rest(net: Net) -> None:
    alice = Phone(net, "101", "pw101", 6040)
    desk, soft = Phone(net, "102", "pw102", 6041), Phone(net, "102", "pw102", 6042)
    desk.register()
    soft.register()
    alice.invite("102")
    inv_desk = desk.last(Request, method="INVITE")
    inv_soft = soft.last(Request, method="INVITE")
    assert inv_desk is not None and inv_soft is not None
    desk.respond(inv_desk, 180)
    soft.respond(inv_soft, 180, tag="softtag")
    soft.respond(inv_soft, 200, SDP_B, tag="softtag")
    assert alice.last(Response, status=200) is not None
    assert desk.last(Request, method="CANCEL") is not None
    assert net.cdrs[-1]["callee_answered_by"] == "102"


def test_reinvite_hold_is_passed_through(net: Net) -> None:
    alice, bob, invite, b_invite = setup_call(net)
    bob.respond(b_invite, 200, SDP_B)
    ok = alice.last(Response, status=200)
    hold_sdp = SDP_A.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    reinvite = alice.in_dialog("INVITE", ok, ok.to.tag, str(ok.contacts[0].uri),
                               invite.call_id, invite.cseq.number + 1)
    reinvite.body = hold_sdp
    reinvite.headers.add("Content-Type", "application/sdp")
    reinvite.headers.add("Contact", "<sip:101@127.0.0.1:6010>")
    net.send(reinvite, alice.peer)
    b_reinvite = [r for r in requests(bob, "INVITE") if r.to.tag]
    assert b_reinvite and b_reinvite[-1].body == hold_sdp
    bob.respond(b_reinvite[-1], 200, SDP_B)
    oks = [m for m in alice.received() if isinstance(m, Response) and m.status == 200
           and m.cseq.number == invite.cseq.number + 1]
    assert oks


def test_malformed_request_gets_400_and_garbage_is_dropped(net: Net) -> None:
    alice = Phone(net, "101", "pw101", 6050)
    req = alice.request("OPTIONS", "101")
    req.headers.set("CSeq", "1 INVITE")  # method mismatch (RFC 4475 mismatch01)
    net.send(req, alice.peer)
    assert alice.last(Response).status == 400
    net.send(b"\x00\xffnot sip at all\r\n\r\n", alice.peer)
    assert net.engine.stats["malformed_dropped"] >= 1


def test_unknown_method_gets_501_with_allow(net: Net) -> None:
    alice = Phone(net, "101", "pw101", 6060)
    net.send(alice.request("FROBNICATE", "101"), alice.peer)
    resp = alice.last(Response)
    assert resp.status == 501 and "INVITE" in (resp.headers.get("Allow") or "")


def test_nat_keepalive_marks_silent_phone_unreachable(net: Net) -> None:
    phone = Phone(net, "102", "pw102", 6070)
    req = phone.request("REGISTER", "102")
    req.headers.set("Contact", "<sip:102@192.168.1.20:5060>")  # private address: behind NAT
    net.send(req, phone.peer)
    net.send(phone.authorize(req, phone.last(Response)), phone.peer)
    assert phone.last(Response).status == 200
    net.advance(31)
    ping = phone.last(Request, method="OPTIONS")
    assert ping is not None and ping.uri == "sip:102@192.168.1.20:5060"  # sent to NAT address
    net.advance(40)  # no answer: Timer F
    alice = Phone(net, "101", "pw101", 6071)
    alice.invite("102")
    assert 480 in statuses(alice)


def test_nat_keepalive_answered_keeps_phone_reachable(net: Net) -> None:
    phone = Phone(net, "102", "pw102", 6072)
    req = phone.request("REGISTER", "102")
    req.headers.set("Contact", "<sip:102@192.168.1.21:5060>")
    net.send(req, phone.peer)
    net.send(phone.authorize(req, phone.last(Response)), phone.peer)
    net.advance(31)
    phone.respond(phone.last(Request, method="OPTIONS"), 200)
    net.advance(5)
    alice = Phone(net, "101", "pw101", 6073)
    alice.invite("102")
    assert phone.last(Request, method="INVITE") is not None


def test_late_2xx_after_the_call_ended_is_acked_and_ended(net: Net) -> None:
    _, bob, _, b_invite = setup_call(net)
    bob.respond(b_invite, 486)
    net.advance(40)  # the INVITE client transaction is long gone
    bob.take()
    bob.respond(b_invite, 200, SDP_B, tag="latetag")  # a confused phone answers anyway
    assert bob.last(Request, method="ACK") is not None
    bye = bob.last(Request, method="BYE")
    assert bye is not None and bye.to.tag == "latetag"
