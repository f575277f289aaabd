"""A phone's transfer key (REFER, RFC 3515/3892/5589) on a bridged call, in memory with the
clock by hand: blind transfer to an extension (202, NOTIFY 100 then 200 terminated, the
transferee re-bridged, the transferor's leg ended), busy and unknown targets (NOTIFY with the
failure, the call kept), the transferor hanging up right after 202, the caller as
transferor, attended transfer with Replaces, and bad REFERs (400 naming Refer-To, 403)."""

from __future__ import annotations

from typing import Any

import pytest
from inmemory import DOMAIN, SDP_A, SDP_B, Net, Phone, make_directory

from frontdesk.pbx.calls import Call
from frontdesk.sip.message import Request, Response

SDP_C = SDP_B.replace(b"o=b", b"o=c").replace(b"4002", b"4004")
SDP_A2 = SDP_A.replace(b"1 1 IN", b"1 2 IN")


class Office:
    """alice (101) calls bob (102, the receptionist); carol (103) is the target."""

    def __init__(self) -> None:
        self.net = Net(make_directory({n: f"pw{n}" for n in ("101", "102", "103")}, 20))
        self.alice = Phone(self.net, "101", "pw101", 6010)
        self.bob = Phone(self.net, "102", "pw102", 6020)
        self.carol = Phone(self.net, "103", "pw103", 6030)
        for phone in (self.alice, self.bob, self.carol):
            assert phone.register().status == 200
            phone.take()
        self.cseq = 100

    def bridge(self) -> tuple[Call, Request, Response, Request]:
        """alice calls bob, bob answers: (call, alice's INVITE, our 200 to her, bob's INVITE)."""
        invite = self.alice.invite("102")
        b_invite = self.bob.last(Request, method="INVITE")
        self.bob.respond(b_invite, 200, SDP_B)
        ok = self.alice.last(Response, status=200)
        self.alice_sends("ACK", ok, invite, invite.cseq.number)
        call = self.net.engine.calls.dialogs[(invite.call_id, ok.to.tag)][0]
        return call, invite, ok, b_invite

    def alice_sends(self, method: str, ok: Response, invite: Request, cseq: int) -> Request:
        req = self.alice.in_dialog(
            method, ok, ok.to.tag, str(ok.contacts[0].uri), invite.call_id, cseq
        )
        self.net.send(req, self.alice.peer)
        return req

    def bob_sends(self, method: str, b_invite: Request, **headers: str) -> Request:
        """bob sends ``method`` in his dialog with us (the INVITE he answered)."""
        self.cseq += 1
        req = self.bob.in_dialog(
            method,
            b_invite,
            b_invite.from_.tag or "",
            str(b_invite.contacts[0].uri),
            b_invite.call_id,
            self.cseq,
        )
        for name, value in headers.items():
            req.headers.add(name.replace("_", "-"), value)
        self.net.send(req, self.bob.peer)
        return req

    def notifies(self) -> list[Request]:
        """The NOTIFYs bob got, each answered 200 as a phone does."""
        found = [m for m in self.bob.received() if isinstance(m, Request) and m.method == "NOTIFY"]
        for n in found:
            if n.headers.get("X-answered") is None:
                n.headers.add("X-answered", "1")
                self.bob.respond(n, 200)
        return found


def requests(phone: Phone, method: str) -> list[Request]:
    return [m for m in phone.received() if isinstance(m, Request) and m.method == method]


def frag(notify: Request) -> str:
    return notify.body.decode().strip()


def control_notes(cdr: dict[str, Any]) -> list[dict[str, Any]]:
    return list((cdr.get("extra") or {}).get("call_control") or [])


@pytest.fixture
def office() -> Office:
    return Office()


def test_blind_transfer_moves_the_caller_and_ends_the_transferor(office: Office) -> None:
    call, invite, ok, b_invite = office.bridge()
    office.bob_sends("REFER", b_invite, Refer_To=f"<sip:103@{DOMAIN}>")
    assert office.bob.last(Response).status == 202
    (trying,) = office.notifies()
    assert frag(trying) == "SIP/2.0 100 Trying"
    assert trying.headers.get("Event") == "refer"
    assert trying.headers.get("Content-Type") or "".startswith("message/sipfrag")
    assert trying.headers.get("Subscription-State") or "".startswith("active")
    (c_inv,) = requests(office.carol, "INVITE")  # the PBX calls carol, delayed offer
    assert c_inv.body == b"" and c_inv.from_.uri.user == "101"
    assert c_inv.headers.get("Referred-By") == f"<sip:102@{DOMAIN}>"
    office.carol.respond(c_inv, 200, SDP_C)
    notifies = office.notifies()
    assert [frag(n) for n in notifies] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    assert notifies[-1].headers.get("Subscription-State") == "terminated;reason=noresource"
    bye = office.bob.last(Request, method="BYE")  # bob's leg ends after the final NOTIFY
    assert bye is not None and office.bob.received().index(bye) > office.bob.received().index(
        notifies[-1]
    )
    office.bob.respond(bye, 200)
    office.net.advance(0.5)
    (re,) = [r for r in requests(office.alice, "INVITE") if r.to.tag]
    assert re.body == SDP_C and re.call_id == invite.call_id
    office.alice.respond(re, 200, SDP_A2)
    c_ack = office.carol.last(Request, method="ACK")
    assert c_ack is not None and c_ack.body == SDP_A2
    office.alice_sends("BYE", ok, invite, invite.cseq.number + 1)
    assert office.carol.last(Request, method="BYE") is not None
    cdr = office.net.cdrs[-1]
    assert cdr["id"] == call.id and cdr["callee_answered_by"] == "103"
    (note,) = control_notes(cdr)
    assert note["action"] == "transfer" and note["kind"] == "blind" and note["via"] == "REFER"
    assert (note["actor"], note["target"], note["status"]) == ("102", "103", "connected")


def test_transferor_hangs_up_right_after_202(office: Office) -> None:
    call, _invite, _ok, b_invite = office.bridge()
    office.bob_sends("REFER", b_invite, Refer_To="103")  # a bare number
    assert office.bob.last(Response).status == 202
    office.notifies()  # bob answers the 100 Trying, then hangs up
    office.bob_sends("BYE", b_invite)
    assert office.bob.last(Response).status == 200
    assert requests(office.alice, "BYE") == []  # alice stays, waiting for carol
    (c_inv,) = requests(office.carol, "INVITE")
    office.bob.take()
    office.carol.respond(c_inv, 200, SDP_C)
    office.net.advance(0.5)
    assert office.bob.received() == []  # no NOTIFY, no BYE to a phone that left
    (re,) = [r for r in requests(office.alice, "INVITE") if r.to.tag]
    office.alice.respond(re, 200, SDP_A2)
    assert office.carol.last(Request, method="ACK").body == SDP_A2
    assert call.state == "answered" and call.answered is not None
    assert call.answered.binding.aor == "103"


def test_busy_target_is_notified_and_the_call_stays(office: Office) -> None:
    call, invite, ok, b_invite = office.bridge()
    office.bob_sends("REFER", b_invite, Refer_To=f"<sip:103@{DOMAIN}>")
    (c_inv,) = requests(office.carol, "INVITE")
    office.carol.respond(c_inv, 486)
    notifies = office.notifies()
    assert frag(notifies[-1]) == "SIP/2.0 486 Busy Here"
    assert notifies[-1].headers.get("Subscription-State") == "terminated;reason=noresource"
    assert requests(office.bob, "BYE") == [] and requests(office.alice, "BYE") == []
    assert call.state == "answered"
    office.alice_sends("BYE", ok, invite, invite.cseq.number + 1)  # still bridged to bob
    assert office.bob.last(Request, method="BYE") is not None
    (note,) = control_notes(office.net.cdrs[-1])
    assert note["status"] == "busy" and note["sip_code"] == 486


def test_unknown_target_gets_404_in_the_notify(office: Office) -> None:
    call, _, _, b_invite = office.bridge()
    office.bob_sends("REFER", b_invite, Refer_To=f"<sip:999@{DOMAIN}>")
    assert office.bob.last(Response).status == 202
    assert [frag(n) for n in office.notifies()] == ["SIP/2.0 100 Trying", "SIP/2.0 404 Not Found"]
    assert call.state == "answered" and requests(office.carol, "INVITE") == []
    # a second try works: one transfer at a time, and the first one is over
    office.bob_sends("REFER", b_invite, Refer_To=f"<sip:103@{DOMAIN}>")
    assert office.bob.last(Response).status == 202
    assert len(requests(office.carol, "INVITE")) == 1


def test_second_refer_while_one_runs_gets_491(office: Office) -> None:
    _, _, _, b_invite = office.bridge()
    office.bob_sends("REFER", b_invite, Refer_To="103")
    office.bob_sends("REFER", b_invite, Refer_To="103")
    assert office.bob.last(Response).status == 491


@pytest.mark.parametrize(
    ("refer_to", "status", "words"),
    [
        (None, 400, "Refer-To is missing"),
        ("<mailto:bob@example.com>", 400, "Refer-To"),
        ("<sip:@acme.test>", 400, "Refer-To"),
        ("<sip:103@elsewhere.example>", 403, "another domain"),
        (f"<sip:103@{DOMAIN}?Replaces=nosuch%3Bto-tag%3Da%3Bfrom-tag%3Db>", 403, "Replaces"),
    ],
)
def test_bad_refer_is_answered_with_the_reason(
    office: Office, refer_to: str | None, status: int, words: str
) -> None:
    call, _, _, b_invite = office.bridge()
    headers = {"Refer_To": refer_to} if refer_to is not None else {}
    office.bob_sends("REFER", b_invite, **headers)
    resp = office.bob.last(Response)
    assert resp.status == status and words in resp.reason, resp.reason
    assert call.state == "answered" and office.notifies() == []


def test_refer_outside_a_dialog_of_ours(office: Office) -> None:
    req = office.bob.in_dialog("REFER", None, "nosuchtag", f"sip:x@{DOMAIN}", "nosuchcall", 1)  # type: ignore[arg-type]
    req.headers.add("Refer-To", "103")
    office.net.send(req, office.bob.peer)
    assert office.bob.last(Response).status == 481


def test_the_caller_transfers_the_callee(office: Office) -> None:
    _call, invite, ok, b_invite = office.bridge()
    refer = office.alice.in_dialog(
        "REFER", ok, ok.to.tag, str(ok.contacts[0].uri), invite.call_id, invite.cseq.number + 1
    )
    refer.headers.add("Refer-To", f"<sip:103@{DOMAIN}>")
    office.net.send(refer, office.alice.peer)
    assert office.alice.last(Response).status == 202
    (c_inv,) = requests(office.carol, "INVITE")
    assert c_inv.from_.uri.user == "102"  # carol sees bob, the transferee
    office.carol.respond(c_inv, 200, SDP_C)
    final = office.alice.last(Request, method="NOTIFY")
    assert frag(final) == "SIP/2.0 200 OK"
    a_bye = office.alice.last(Request, method="BYE")
    assert a_bye is not None and a_bye.call_id == invite.call_id
    office.alice.respond(a_bye, 200)
    office.net.advance(0.5)
    (re,) = [r for r in requests(office.bob, "INVITE") if r.to.tag]  # bob gets carol's offer
    assert re.body == SDP_C and re.call_id == b_invite.call_id
    office.bob.respond(re, 200, SDP_B)
    assert office.carol.last(Request, method="ACK").body == SDP_B
    bye = office.carol.in_dialog(
        "BYE", c_inv, c_inv.from_.tag or "", str(c_inv.contacts[0].uri), c_inv.call_id, 5
    )
    office.net.send(bye, office.carol.peer)
    assert office.bob.last(Request, method="BYE") is not None
    cdr = office.net.cdrs[-1]
    assert cdr["call_id"] == invite.call_id and cdr["caller"] == "101"
    assert cdr["callee_answered_by"] == "103" and cdr["ended_at"] is not None


def test_attended_transfer_joins_the_held_caller_and_the_consulted_phone(office: Office) -> None:
    call1, invite, ok, b_invite = office.bridge()
    # bob calls carol to consult (call 2; bob's INVITE needs his credentials)
    consult = office.bob.invite("103")
    c_inv = office.carol.last(Request, method="INVITE")
    office.carol.respond(c_inv, 200, SDP_C)
    ok2 = office.bob.last(Response, status=200)
    ack = office.bob.in_dialog(
        "ACK", ok2, ok2.to.tag, str(ok2.contacts[0].uri), consult.call_id, consult.cseq.number
    )
    office.net.send(ack, office.bob.peer)
    call2 = office.net.engine.calls.dialogs[(consult.call_id, ok2.to.tag)][0]
    assert call2 is not call1
    replaces = f"{consult.call_id}%3Bto-tag%3D{ok2.to.tag}%3Bfrom-tag%3D{office.bob.tag}"
    office.bob_sends("REFER", b_invite, Refer_To=f"<sip:103@{DOMAIN}?Replaces={replaces}>")
    assert office.bob.last(Response).status == 202
    # carol is asked for an offer in her existing dialog (re-INVITE without SDP)
    (c_re,) = [r for r in requests(office.carol, "INVITE") if r.to.tag]
    assert c_re.body == b"" and c_re.call_id == c_inv.call_id
    office.carol.respond(c_re, 200, SDP_C)
    (a_re,) = [r for r in requests(office.alice, "INVITE") if r.to.tag]
    assert a_re.body == SDP_C and a_re.call_id == invite.call_id
    office.alice.respond(a_re, 200, SDP_A2)
    c_ack = office.carol.last(Request, method="ACK")
    assert c_ack.cseq.number == c_re.cseq.number and c_ack.body == SDP_A2
    assert frag(office.notifies()[-1]) == "SIP/2.0 200 OK"
    byes = requests(office.bob, "BYE")
    assert sorted(b.call_id for b in byes) == sorted((b_invite.call_id, consult.call_id))
    assert requests(office.alice, "BYE") == [] and requests(office.carol, "BYE") == []
    # alice and carol now talk through call 1; alice hangs up, carol gets the BYE
    office.alice_sends("BYE", ok, invite, invite.cseq.number + 1)
    c_bye = office.carol.last(Request, method="BYE")
    assert c_bye is not None and c_bye.call_id == c_inv.call_id
    cdrs = {c["id"]: c for c in office.net.cdrs if c["ended_at"] is not None}
    (n1,) = control_notes(cdrs[call1.id])
    (n2,) = control_notes(cdrs[call2.id])
    assert n1["kind"] == "attended" and n1["actor"] == "102" and n1["target"] == "103"
    assert n1["replaced_call"] == call2.id and n1["status"] == "connected"
    assert n2["joined_call"] == call1.id and n2["target"] == "101"
    assert cdrs[call1.id]["callee_answered_by"] == "103"
