"""Third-party call control (RFC 3725) on a bridged call, in memory with the clock by hand:
the delayed-offer INVITE forked to the new target, the re-INVITE of the caller with the
callee's offer, the ACK carrying the caller's answer, BYE to the old callee; busy, no answer,
the caller refusing the offer, glare (491) both ways, the caller hanging up mid-way; and the
CDR afterwards."""

from __future__ import annotations

import random

import pytest
from inmemory import SDP_A, SDP_B, Net, Phone, make_directory

from frontdesk.pbx.callcontrol import Rebridge, RebridgeResult, seat_of
from frontdesk.pbx.calls import Call
from frontdesk.sip.message import Request, Response

SDP_C = SDP_B.replace(b"o=b", b"o=c").replace(b"4002", b"4004")
SDP_A2 = SDP_A.replace(b"1 1 IN", b"1 2 IN")


class Office:
    def __init__(self) -> None:
        self.net = Net(make_directory({n: f"pw{n}" for n in ("101", "102", "103")}, 20))
        self.alice = Phone(self.net, "101", "pw101", 6010)
        self.bob = Phone(self.net, "102", "pw102", 6020)
        self.carol = Phone(self.net, "103", "pw103", 6030)
        self.carol2 = Phone(self.net, "103", "pw103", 6031)  # carol's second phone
        for phone in (self.bob, self.carol, self.carol2):
            assert phone.register().status == 200
            phone.take()
        self.results: list[RebridgeResult] = []

    def bridge(self) -> tuple[Call, Response, Request]:
        """alice calls bob, bob answers, alice ACKs: a bridged call."""
        invite = self.alice.invite("102")
        b_invite = self.bob.last(Request, method="INVITE")
        self.bob.respond(b_invite, 200, SDP_B)
        ok = self.alice.last(Response, status=200)
        self.alice_sends("ACK", ok, invite, invite.cseq.number)
        calls = [c for c, side in self.net.engine.calls.dialogs.values() if side == "a"]
        assert len(calls) == 1
        return calls[0], ok, invite

    def alice_sends(
        self, method: str, ok: Response, invite: Request, cseq: int, body: bytes = b""
    ) -> None:
        """alice sends ``method`` in her dialog with us (``ok``: our 200 to ``invite``)."""
        request = self.alice.in_dialog(
            method, ok, ok.to.tag, str(ok.contacts[0].uri), invite.call_id, cseq
        )
        if body:
            request.body = body
            request.headers.add("Content-Type", "application/sdp")
        self.net.send(request, self.alice.peer)

    def transfer(self, call: Call, timeout: float = 20.0) -> Rebridge:
        engine = self.net.engine
        bindings = engine.location.lookup(1, "103", self.net.now)
        rb = engine.calls.control.connect(
            seat_of(call), "103", bindings, timeout, self.net.now, self._done, call
        )
        self.net.deliver()
        return rb

    def carol_answers(self, inv: Request, phone: Phone | None = None) -> None:
        """carol's 200 with her offer; bob confirms the BYE he gets before alice is moved."""
        (phone or self.carol).respond(inv, 200, SDP_C)
        bye = self.bob.last(Request, method="BYE")
        assert bye is not None and reinvites(self.alice) == []  # bob's media stops first
        self.bob.respond(bye, 200)
        self.net.advance(0.1)
        assert reinvites(self.alice) == []  # his last packets are let through first
        self.net.advance(0.15)

    def _done(self, _rb: Rebridge, result: RebridgeResult, _now: float) -> None:
        self.results.append(result)


def invites(phone: Phone) -> list[Request]:
    return [m for m in phone.received() if isinstance(m, Request) and m.method == "INVITE"]


def reinvites(phone: Phone) -> list[Request]:
    """re-INVITEs the phone got, retransmissions (same branch) counted once."""
    seen: dict[str, Request] = {}
    for r in invites(phone):
        if r.to.tag:
            seen.setdefault(r.top_via.branch or "", r)
    return list(seen.values())


@pytest.fixture
def office() -> Office:
    return Office()


def test_transfer_sequence_delayed_offer_reinvite_and_ack_with_answer(office: Office) -> None:
    call, ok, invite = office.bridge()
    office.transfer(call)
    # 1. both of carol's phones get an INVITE without SDP (delayed offer)
    for phone in (office.carol, office.carol2):
        (inv,) = invites(phone)
        assert inv.body == b"" and inv.headers.get("Content-Type") is None
        assert inv.from_.uri.user == "101"
    assert reinvites(office.alice) == []
    inv = invites(office.carol)[0]
    office.carol.respond(inv, 180)
    office.carol2.respond(invites(office.carol2)[0], 180)
    office.carol_answers(inv)  # carol's offer; bob is released first
    # 2. the other fork is cancelled
    assert office.carol2.last(Request, method="CANCEL") is not None
    # 3. alice is re-INVITEd with carol's offer, in her dialog with us
    (re,) = reinvites(office.alice)
    assert re.body == SDP_C and re.call_id == invite.call_id and re.to.tag == office.alice.tag
    assert re.from_.tag == ok.to.tag and re.cseq.number == 1
    assert office.carol.last(Request, method="ACK") is None  # no answer yet
    office.alice.respond(re, 200, SDP_A2)
    # 4. alice's 200 is ACKed; carol's ACK carries alice's answer
    a_ack = office.alice.last(Request, method="ACK")
    assert a_ack is not None and a_ack.cseq.number == re.cseq.number
    c_ack = office.carol.last(Request, method="ACK")
    assert c_ack is not None and c_ack.body == SDP_A2 and c_ack.call_id == inv.call_id
    # 5. bob got BYE (before alice was moved); the outcome went back
    assert [r.status for r in office.results] == [200]
    assert office.results[0].answered_by == "103"
    # in-dialog requests now go between alice and carol; alice hangs up
    office.alice_sends("BYE", ok, invite, invite.cseq.number + 1)
    c_bye = office.carol.last(Request, method="BYE")
    assert c_bye is not None and c_bye.call_id == inv.call_id
    cdr = office.net.cdrs[-1]
    assert cdr["disposition"] == "answered" and cdr["callee_answered_by"] == "103"
    assert cdr["id"] == call.id and cdr["hangup_side"] == "caller"


def test_carol_retransmits_her_200_and_gets_the_same_ack(office: Office) -> None:
    call, _, _ = office.bridge()
    office.transfer(call)
    inv = invites(office.carol)[0]
    office.carol_answers(inv)
    office.alice.respond(reinvites(office.alice)[0], 200, SDP_A2)
    office.carol.take()
    office.carol.respond(inv, 200, SDP_C)  # our ACK was lost
    acks = [m for m in office.carol.received() if isinstance(m, Request) and m.method == "ACK"]
    assert len(acks) == 1 and acks[0].body == SDP_A2
    assert office.carol.last(Request, method="BYE") is None


@pytest.mark.parametrize(("status", "outcome"), [(486, "busy"), (603, "failed")])
def test_busy_target_keeps_the_caller_with_bob(office: Office, status: int, outcome: str) -> None:
    call, _, _ = office.bridge()
    office.transfer(call)
    office.carol.respond(invites(office.carol)[0], status)
    office.carol2.respond(invites(office.carol2)[0], status)
    assert [r.outcome for r in office.results] == [outcome]
    assert reinvites(office.alice) == [] and office.bob.last(Request, method="BYE") is None
    assert call.state == "answered" and call.answered is not None
    assert call.answered.binding.aor == "102"


def test_no_answer_cancels_every_fork(office: Office) -> None:
    call, _, _ = office.bridge()
    office.transfer(call, timeout=5)
    office.carol.respond(invites(office.carol)[0], 180)
    office.carol2.respond(invites(office.carol2)[0], 180)
    office.net.advance(4)
    assert office.results == []
    office.net.advance(2)
    assert [r.status for r in office.results] == [480]
    assert office.carol.last(Request, method="CANCEL") is not None
    assert office.carol2.last(Request, method="CANCEL") is not None
    assert office.bob.last(Request, method="BYE") is None


def test_caller_refuses_the_offer_carol_is_acked_and_released(office: Office) -> None:
    call, _, _ = office.bridge()
    office.transfer(call)
    office.carol_answers(invites(office.carol)[0])
    office.alice.respond(reinvites(office.alice)[0], 488)
    assert [r.status for r in office.results] == [488]
    assert office.carol.last(Request, method="ACK") is not None
    assert office.carol.last(Request, method="BYE") is not None
    # bob was released when carol answered: nobody is left, so alice's call ends
    assert office.alice.last(Request, method="BYE") is not None
    cdr = office.net.cdrs[-1]
    assert cdr["ended_at"] is not None and cdr["sip_code"] == 488


def test_glare_491_is_retried_after_a_random_wait(office: Office) -> None:
    call, _, _ = office.bridge()
    office.net.engine.calls.control.rng = random.Random(7)
    office.transfer(call)
    office.carol_answers(invites(office.carol)[0])
    first = reinvites(office.alice)[0]
    office.alice.respond(first, 491)
    assert len(reinvites(office.alice)) == 1  # not at once
    office.net.advance(2.1)  # RFC 3261 §14.1: 0-2 s (alice owns the Call-ID)
    again = reinvites(office.alice)
    assert len(again) == 2 and again[1].cseq.number == first.cseq.number + 1
    assert again[1].body == SDP_C
    office.alice.respond(again[1], 200, SDP_A2)
    assert [r.status for r in office.results] == [200]
    assert office.carol.last(Request, method="ACK").body == SDP_A2


def test_reinvite_from_the_caller_during_ours_gets_491(office: Office) -> None:
    call, ok, invite = office.bridge()
    office.transfer(call)
    office.carol_answers(invites(office.carol)[0])
    office.alice_sends("INVITE", ok, invite, invite.cseq.number + 1, SDP_A2)
    assert office.alice.last(Response).status == 491
    assert [r for r in invites(office.bob) if r.to.tag] == []  # not relayed to bob


def test_caller_hangs_up_while_target_rings(office: Office) -> None:
    call, ok, invite = office.bridge()
    office.transfer(call)
    office.carol.respond(invites(office.carol)[0], 180)
    office.carol2.respond(invites(office.carol2)[0], 180)
    office.alice_sends("BYE", ok, invite, invite.cseq.number + 1)
    assert [r.status for r in office.results] == [487]
    assert office.carol.last(Request, method="CANCEL") is not None
    assert office.carol2.last(Request, method="CANCEL") is not None
    assert office.bob.last(Request, method="BYE") is not None  # relayed as always
    cdr = office.net.cdrs[-1]
    assert cdr["ended_at"] is not None and cdr["callee_answered_by"] == "102"


def test_caller_hangs_up_after_target_answered(office: Office) -> None:
    call, ok, invite = office.bridge()
    office.transfer(call)
    office.carol_answers(invites(office.carol)[0])
    office.alice_sends("BYE", ok, invite, invite.cseq.number + 1)
    assert [r.status for r in office.results] == [487]
    # carol answered and is released: ACK then BYE
    assert office.carol.last(Request, method="ACK") is not None
    assert office.carol.last(Request, method="BYE") is not None
    # the re-INVITE alice never answered is answered late: nothing happens
    office.alice.respond(reinvites(office.alice)[0], 481)
    assert len(office.results) == 1


def test_late_answer_of_a_second_fork_is_released(office: Office) -> None:
    call, _, _ = office.bridge()
    office.transfer(call)
    office.carol_answers(invites(office.carol)[0])
    office.carol2.respond(invites(office.carol2)[0], 200, SDP_C)  # crossed our CANCEL
    ack = office.carol2.last(Request, method="ACK")
    assert ack is not None and b"m=audio 0 RTP/AVP 0" in ack.body  # declined, as an answer
    assert office.carol2.last(Request, method="BYE") is not None
    office.alice.respond(reinvites(office.alice)[0], 200, SDP_A2)
    assert [r.status for r in office.results] == [200]


def test_bob_not_answering_his_bye_delays_the_move_one_second(office: Office) -> None:
    call, _, _ = office.bridge()
    office.transfer(call)
    office.carol.respond(invites(office.carol)[0], 200, SDP_C)
    assert office.bob.last(Request, method="BYE") is not None
    office.net.advance(1.0)
    assert reinvites(office.alice) == []
    office.net.advance(0.5)
    assert len(reinvites(office.alice)) == 1


def test_caller_reinvite_while_bob_is_released_gets_491(office: Office) -> None:
    call, ok, invite = office.bridge()
    office.transfer(call)
    office.carol.respond(invites(office.carol)[0], 200, SDP_C)
    office.alice_sends("INVITE", ok, invite, invite.cseq.number + 1, SDP_A2)
    assert office.alice.last(Response).status == 491


def test_alice_retransmits_her_200_to_our_reinvite_and_gets_an_ack_not_a_bye(
    office: Office,
) -> None:
    call, _, _ = office.bridge()
    office.transfer(call)
    office.carol_answers(invites(office.carol)[0])
    re = reinvites(office.alice)[0]
    office.alice.respond(re, 200, SDP_A2)
    office.net.advance(1.0)  # the re-INVITE transaction is gone (Timer K/D for 2xx)
    office.alice.take()
    office.alice.respond(re, 200, SDP_A2)  # our ACK was lost
    got = office.alice.received()
    assert [m.method for m in got if isinstance(m, Request)] == ["ACK"]
    assert office.carol.last(Request, method="BYE") is None
