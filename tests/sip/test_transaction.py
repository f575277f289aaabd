"""Transaction layer, server side, time moved by hand (STYLE #2).

Requests go in as parsed bytes and the test plays the TU. Timers G, H, I, J, L and the 2xx
retransmissions are checked at their exact deadlines; the state tables are checked as data.
"""

from __future__ import annotations

import pytest
from transaction_support import (
    UAC,
    UAC_TCP,
    S,
    advance,
    new_server_txn,
    parsed,
    req,
    sends,
    statuses,
    wire,
)

from frontdesk.sip.errors import LocalProtocolError
from frontdesk.sip.message import Request, Response, make_response, parse_message
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    TABLES,
    AckReceived,
    CancelReceived,
    RequestReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTimedOut,
    make_cancel,
)

# --- the state tables, as data ---------------------------------------------------------------
INITIAL = {"ICT": S.CALLING, "NICT": S.TRYING, "IST": S.PROCEEDING, "NIST": S.TRYING}
EVENTS = {"1xx", "2xx", "3xx-6xx", "send 1xx", "send 2xx", "send 3xx-6xx", "request", "ack"}
TIMERS = {"ICT": "ABDM", "NICT": "EFK", "IST": "GHIL", "NIST": "J"}


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_state_table_is_well_formed(kind: str) -> None:
    table = TABLES[kind]
    timers = {f"timer {t}" for t in TIMERS[kind]} | ({"timer 2xx"} if kind == "IST" else set())
    assert {event for _, event in table} <= EVENTS | timers
    assert {event for _, event in table if event.startswith("timer")} == timers
    assert not [key for key in table if key[0] is S.TERMINATED]  # nothing leaves Terminated
    reachable, todo = {INITIAL[kind]}, [INITIAL[kind]]
    while todo:
        state = todo.pop()
        for (src, _), dst in table.items():
            if src is state and dst not in reachable:
                reachable.add(dst)
                todo.append(dst)
    assert reachable == {src for src, _ in table} | {S.TERMINATED}


# --- INVITE server ------------------------------------------------------------------------
def test_invite_creates_transaction_and_100_trying_goes_back_to_the_source() -> None:
    layer = TransactionLayer()
    events = layer.receive(req(), UAC, 0.0)
    assert [type(e) for e in events] == [RequestReceived]
    out = layer.drain()
    assert statuses(out) == ["100"] and out[0][1] == UAC
    trying = parsed(out[0][0])
    assert trying.headers.get("To") == "<sip:bob@example.com>"  # no tag on 100
    assert trying.call_id == "call-1" and str(trying.cseq) == "1 INVITE"
    txn = events[0].transaction  # type: ignore[union-attr]
    assert txn.state is S.PROCEEDING and txn.is_invite and txn.peer == UAC


def test_no_auto_trying_when_disabled() -> None:
    layer = TransactionLayer(auto_trying=False)
    layer.receive(req(), UAC, 0.0)
    assert layer.drain() == []


def test_retransmitted_invite_is_absorbed_and_the_last_response_resent() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    assert layer.receive(req(), UAC, 0.2) == []
    assert statuses(layer.drain()) == ["100"]
    layer.send_response(txn, make_response(txn.request, 180, to_tag="tt"), 0.3)
    layer.drain()
    assert layer.receive(req(), UAC, 0.4) == []
    assert statuses(layer.drain()) == ["180"]


def test_2xx_is_retransmitted_doubling_to_t2_until_ack() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 0.0)
    assert txn.state is S.ACCEPTED and statuses(layer.drain()) == ["200"]
    log = advance(layer, 12.0)
    assert sends(log) == [0.5, 1.5, 3.5, 7.5, 11.5]  # intervals 0.5, 1, 2, 4, 4
    ack = req("ACK", branch="z9hG4bKack1", cseq=1, to_tag="tt")
    events = layer.receive(ack, UAC, 12.0)
    assert events == [AckReceived(ack, UAC, txn)]
    assert txn.acked
    log = advance(layer, 100.0)
    assert sends(log) == []
    assert [t for t, _, _ in log] == [32.0]  # Timer L ends Accepted silently after the ACK
    assert log[0][1] == []
    assert txn.state is S.TERMINATED and len(layer) == 0


def test_timer_L_reports_a_2xx_that_was_never_acked() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 0.0)
    layer.drain()
    log = advance(layer, 100.0)
    assert log[-1][0] == 32.0 and log[-1][1] == [TransactionTimedOut(txn, "L")]
    assert sends(log) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert layer.next_timer() is None and len(layer) == 0


def test_retransmitted_invite_in_accepted_resends_2xx_until_acked() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 0.0)
    layer.drain()
    assert layer.receive(req(), UAC, 0.1) == []
    assert statuses(layer.drain()) == ["200"]
    layer.receive(req("ACK", branch="z9hG4bKack1", to_tag="tt"), UAC, 0.2)
    assert layer.receive(req(), UAC, 0.3) == []
    assert layer.drain() == []


def test_ack_for_2xx_with_another_from_tag_or_cseq_does_not_match() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 0.0)
    for ack in (
        req("ACK", branch="z9hG4bKa2", from_tag="other", to_tag="tt"),
        req("ACK", branch="z9hG4bKa3", cseq=2, to_tag="tt"),
        req("ACK", branch="z9hG4bKa4", call_id="call-2", to_tag="tt"),
    ):
        assert layer.receive(ack, UAC, 0.1) == [AckReceived(ack, UAC, None)]
    assert not txn.acked


def test_3xx_6xx_timer_G_retransmits_and_timer_H_gives_up() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 486, to_tag="tt"), 0.0)
    assert txn.state is S.COMPLETED and statuses(layer.drain()) == ["486"]
    log = advance(layer, 100.0)
    assert sends(log) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert log[-1][0] == 32.0 and log[-1][1] == [TransactionTimedOut(txn, "H")]
    assert len(layer) == 0


def test_ack_for_non_2xx_is_absorbed_and_timer_I_ends_confirmed() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 486, to_tag="tt"), 0.0)
    layer.drain()
    advance(layer, 0.5)  # one Timer G retransmission
    ack = req("ACK", branch="z9hG4bKtest1", to_tag="tt")  # same branch: non-2xx ACK
    assert layer.receive(ack, UAC, 1.0) == []
    assert txn.state is S.CONFIRMED
    assert layer.receive(ack, UAC, 2.0) == []  # retransmitted ACK absorbed too
    assert layer.receive(req(), UAC, 3.0) == []  # so is the INVITE
    assert layer.drain() == []
    log = advance(layer, 100.0)
    assert [(t, e, o) for t, e, o in log] == [(6.0, [], [])]  # Timer I = T4 after the ACK
    assert txn.state is S.TERMINATED and len(layer) == 0


def test_retransmitted_invite_in_completed_gets_the_final_response() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 603, to_tag="tt"), 0.0)
    layer.drain()
    assert layer.receive(req(), UAC, 0.2) == []
    assert statuses(layer.drain()) == ["603"]


def test_send_response_refuses_what_the_state_forbids() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 486, to_tag="tt"), 0.0)
    with pytest.raises(LocalProtocolError, match="cannot send 180"):
        layer.send_response(txn, make_response(txn.request, 180), 0.1)
    with pytest.raises(LocalProtocolError, match="cannot send 200"):
        layer.send_response(txn, make_response(txn.request, 200), 0.1)
    with pytest.raises(LocalProtocolError):
        layer.send_response(txn, Response(700, "Bad"), 0.1)


def test_accepted_takes_further_2xx_from_the_tu_and_retransmits_the_newest() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 0.0)
    second = make_response(txn.request, 200, "OK again", to_tag="tt")
    layer.send_response(txn, second, 0.1)
    layer.drain()
    advance(layer, 0.5)
    assert txn.last_response is second
    with pytest.raises(LocalProtocolError):
        layer.send_response(txn, make_response(txn.request, 486, to_tag="tt"), 0.6)


# --- non-INVITE server ------------------------------------------------------------------------
def test_non_invite_server_trying_proceeding_completed_and_timer_J() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer, "OPTIONS")
    assert txn.state is S.TRYING and not txn.is_invite
    assert layer.drain() == []  # no automatic 100 for non-INVITE
    assert layer.receive(req("OPTIONS"), UAC, 0.1) == []
    assert layer.drain() == []  # Trying: absorbed silently
    layer.send_response(txn, make_response(txn.request, 100), 0.2)
    assert txn.state is S.PROCEEDING
    layer.drain()
    layer.receive(req("OPTIONS"), UAC, 0.3)
    assert statuses(layer.drain()) == ["100"]
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 1.0)
    assert txn.state is S.COMPLETED
    layer.drain()
    layer.receive(req("OPTIONS"), UAC, 2.0)
    assert statuses(layer.drain()) == ["200"]
    log = advance(layer, 100.0)
    assert [t for t, _, _ in log] == [33.0]  # Timer J = 64*T1 after the final response
    assert log[0][1] == [] and len(layer) == 0
    # after Timer J the same request is new again
    assert [type(e) for e in layer.receive(req("OPTIONS"), UAC, 40.0)] == [RequestReceived]


# --- CANCEL -----------------------------------------------------------------------------------
def test_cancel_gets_its_own_transaction_and_finds_the_invite() -> None:
    layer = TransactionLayer()
    invite_txn = new_server_txn(layer)
    cancel = req("CANCEL")  # same branch and sent-by as the INVITE
    events = layer.receive(cancel, UAC, 1.0)
    assert len(events) == 1 and isinstance(events[0], CancelReceived)
    ev = events[0]
    assert ev.invite is invite_txn and ev.transaction is not invite_txn
    assert ev.transaction.request is cancel and ev.transaction.state is S.TRYING
    assert layer.drain() == []  # the TU answers
    layer.send_response(ev.transaction, make_response(cancel, 200, to_tag="tt"), 1.0)
    layer.send_response(invite_txn, make_response(invite_txn.request, 487, to_tag="tt"), 1.0)
    assert statuses(layer.drain()) == ["200", "487"]


def test_cancel_for_no_transaction_is_answered_481_by_the_layer() -> None:
    layer = TransactionLayer()
    new_server_txn(layer)
    cancel = req("CANCEL", branch="z9hG4bKother")
    events = layer.receive(cancel, UAC, 1.0)
    assert len(events) == 1 and isinstance(events[0], CancelReceived)
    assert events[0].invite is None
    out = layer.drain()
    assert statuses(out) == ["481"]
    answer = parsed(out[0][0])
    assert str(answer.cseq) == "1 CANCEL" and answer.to.tag
    assert events[0].transaction.state is S.COMPLETED
    assert layer.receive(cancel, UAC, 1.5) == []  # retransmitted CANCEL: 481 again
    assert statuses(layer.drain()) == ["481"]


def test_cancel_from_another_sent_by_does_not_match() -> None:
    layer = TransactionLayer()
    new_server_txn(layer)
    other = "SIP/2.0/UDP 192.0.2.99:5070;branch=z9hG4bKtest1"
    events = layer.receive(req("CANCEL", via=other), Peer("udp", "192.0.2.99", 5070), 1.0)
    assert isinstance(events[0], CancelReceived) and events[0].invite is None


def test_make_cancel_copies_what_rfc3261_9_1_requires() -> None:
    invite = req(uri="sip:bob@example.com;transport=udp")
    invite.headers.add("Route", "<sip:proxy.example.com;lr>")
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.headers.get("Via") == invite.headers.get("Via")
    for name in ("From", "To", "Call-ID", "Route"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert str(cancel.cseq) == "1 CANCEL"
    reparsed = parsed(bytes(cancel))
    assert isinstance(reparsed, Request) and reparsed.method == "CANCEL"
    with pytest.raises(LocalProtocolError):
        make_cancel(req("BYE"))


# --- RFC 2543 matching (RFC 4475 §3.2.1 badbranch, §3.4.1 inv2543) --------------------------
INV2543 = (
    b"INVITE sip:UserB@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP iftgw.example.com\r\n"
    b"From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
    b"Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n"
    b"To: sip:+16505552222@ss1.example.net;user=phone\r\n"
    b"Call-ID: inv2543.1717@ift.client.example.com\r\n"
    b"CSeq: 56 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n"
    b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\n"
    b"t=0 0\r\nm=audio 49217 RTP/AVP 0\r\n"
)
BADBRANCH = (
    b"OPTIONS sip:user@example.com SIP/2.0\r\n"
    b"To: sip:user@example.com\r\n"
    b"From: sip:caller@example.org;tag=33242\r\n"
    b"Max-Forwards: 3\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\r\n"
    b"Accept: application/sdp\r\n"
    b"Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\r\n"
    b"CSeq: 8 OPTIONS\r\n"
    b"l: 0\r\n"
    b"\r\n"
)
GW = Peer("udp", "192.0.2.5", 5060)


def test_inv2543_retransmission_and_ack_match_by_rfc2543_rules() -> None:
    layer = TransactionLayer()
    events = layer.receive(parsed(INV2543), GW, 0.0)
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    txn = events[0].transaction
    assert statuses(layer.drain()) == ["100"]
    assert layer.receive(parsed(INV2543), GW, 0.3) == []
    assert statuses(layer.drain()) == ["100"]
    layer.send_response(txn, make_response(txn.request, 404, to_tag="t2543"), 0.5)
    layer.drain()
    ack = INV2543.split(b"\r\n\r\n")[0].replace(b"INVITE sip", b"ACK sip")
    ack = ack.replace(b"56 INVITE", b"56 ACK").replace(
        b"user=phone\r\nCall", b"user=phone;tag=t2543\r\nCall"
    )
    assert layer.receive(parsed(ack + b"\r\n\r\n"), GW, 0.6) == []
    assert txn.state is S.CONFIRMED


def test_rfc2543_ack_with_another_to_tag_is_not_the_non2xx_ack() -> None:
    layer = TransactionLayer()
    txn = layer.receive(parsed(INV2543), GW, 0.0)[0].transaction  # type: ignore[union-attr]
    assert isinstance(txn, ServerTransaction)
    layer.send_response(txn, make_response(txn.request, 404, to_tag="t2543"), 0.5)
    ack = INV2543.split(b"\r\n\r\n")[0].replace(b"INVITE sip", b"ACK sip")
    ack = ack.replace(b"56 INVITE", b"56 ACK").replace(
        b"user=phone\r\nCall", b"user=phone;tag=zzz\r\nCall"
    )
    events = layer.receive(parsed(ack + b"\r\n\r\n"), GW, 0.6)
    assert [type(e) for e in events] == [AckReceived] and txn.state is S.COMPLETED


def test_badbranch_falls_back_to_rfc2543_matching() -> None:
    layer = TransactionLayer()
    src = Peer("udp", "192.0.2.1", 5060)
    events = layer.receive(parsed(BADBRANCH), src, 0.0)
    assert [type(e) for e in events] == [RequestReceived]
    assert layer.receive(parsed(BADBRANCH), src, 0.1) == []  # same message: retransmission
    # a different CSeq with the same bare cookie is a new transaction, not a retransmission
    other = parsed(BADBRANCH.replace(b"8 OPTIONS", b"9 OPTIONS"))
    assert [type(e) for e in layer.receive(other, src, 0.2)] == [RequestReceived]
    assert len(layer) == 2


# --- Via received / rport (RFC 3261 §18.2.1, RFC 3581) ---------------------------------------
@pytest.mark.parametrize(
    ("top", "source", "expected"),
    [
        (
            "SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKv1",
            UAC,
            "SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKv1",
        ),
        (
            "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKv1",
            UAC,
            "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKv1;received=192.0.2.10",
        ),
        (
            "SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bKv1",
            UAC,
            "SIP/2.0/UDP 10.0.0.5:5070;rport=5070;branch=z9hG4bKv1;received=192.0.2.10",
        ),
        (
            "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKv1;rport",
            Peer("udp", "192.0.2.10", 1024),
            "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKv1;rport=1024;received=192.0.2.10",
        ),
        (
            "SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bKv1;received=1.2.3.4",
            UAC,
            "SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bKv1;received=192.0.2.10",
        ),
        (
            "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKv1",
            Peer("udp", "2001:db8::9", 5070),
            "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKv1",
        ),
        (
            "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKv1",
            Peer("udp", "2001:db8::1", 5070),
            "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKv1;received=2001:db8::1",
        ),
        (
            "SIP/2.0/TCP 10.0.0.5:5070;branch=z9hG4bKv1;rport",
            UAC_TCP,
            "SIP/2.0/TCP 10.0.0.5:5070;branch=z9hG4bKv1;rport=40123;received=192.0.2.10",
        ),
    ],
)
def test_top_via_gets_received_and_rport(top: str, source: Peer, expected: str) -> None:
    layer = TransactionLayer()
    events = layer.receive(req("OPTIONS", via=top), source, 0.0)
    request = events[0].request  # type: ignore[union-attr]
    assert request.headers.get("Via") == expected
    response = make_response(request, 200, to_tag="x")
    assert response.headers.get("Via") == expected


def test_via_rewrite_keeps_every_other_byte() -> None:
    data = wire(
        "OPTIONS",
        via="SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bKv1 ,"
        "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1",
    )
    layer = TransactionLayer()
    request = layer.receive(parse_message(data), UAC, 0.0)[0].request  # type: ignore[union-attr]
    expected = data.replace(
        b"rport;branch=z9hG4bKv1 ,", b"rport=5070;branch=z9hG4bKv1;received=192.0.2.10 ,"
    )
    assert bytes(request) == expected
    assert len(request.vias) == 2


def test_response_goes_to_the_source_not_the_via() -> None:
    layer = TransactionLayer()
    nat = Peer("udp", "203.0.113.7", 61000)
    txn = new_server_txn(
        layer, "OPTIONS", source=nat, via="SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKn;rport"
    )
    layer.send_response(txn, make_response(txn.request, 200, to_tag="x"), 0.0)
    assert [peer for _, peer in layer.drain()] == [nat]


def test_ack_after_timer_L_belongs_to_no_transaction() -> None:
    layer = TransactionLayer()
    txn = new_server_txn(layer)
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 0.0)
    advance(layer, 100.0)
    ack = req("ACK", branch="z9hG4bKlate", to_tag="tt")
    assert layer.receive(ack, UAC, 100.0) == [AckReceived(ack, UAC, None)]


def test_via_with_lws_and_compact_form_still_matches() -> None:
    spaced = "SIP / 2.0 / UDP 192.0.2.10 : 5070 ; branch = z9hG4bKlws ; rport"
    data = wire("OPTIONS", via=spaced).replace(b"\r\nVia: ", b"\r\nv: ")
    layer = TransactionLayer()
    events = layer.receive(parse_message(data), UAC, 0.0)
    assert [type(e) for e in events] == [RequestReceived]
    txn = events[0].transaction  # type: ignore[union-attr]
    assert txn.id == "z9hG4bKlws;192.0.2.10:5070;OPTIONS"
    assert txn.request.top_via.params["rport"] == "5070"
    assert layer.receive(parse_message(data), UAC, 0.1) == []  # the retransmission matches


def test_completed_non_invite_forgets_parsed_views_but_still_answers_and_reads_them() -> None:
    """A completed non-INVITE server transaction lingers 32 s for retransmissions only: the
    parsed views of its messages are dropped (fewer objects for the collector) and come
    back on demand; the retransmission still gets the same response bytes."""
    layer = TransactionLayer()
    txn = new_server_txn(layer, "REGISTER")
    assert txn.request.cseq.method == "REGISTER" and txn.request._cseq is not None
    layer.send_response(txn, make_response(txn.request, 200, to_tag="tt"), 0.0)
    first = layer.drain()
    assert txn.state is S.COMPLETED
    assert txn.request._cseq is None and txn.request._top_via is None
    assert txn.last_response is not None and txn.last_response._to is None
    assert txn.request.cseq.method == "REGISTER" and txn.last_response.to.tag == "tt"
    assert layer.receive(req("REGISTER"), UAC, 1.0) == []
    assert layer.drain() == first
