"""Transaction layer, client side, TCP and housekeeping; time moved by hand (STYLE #2).

Responses are built from what the layer sent. Timers A, B, D, E, F, K and M are checked at
their exact deadlines.
"""

from __future__ import annotations

import pytest
from transaction_support import (
    SERVER,
    UAC,
    UAC_TCP,
    S,
    advance,
    answer,
    invite_out,
    new_server_txn,
    parsed,
    req,
    sends,
    statuses,
)

from frontdesk.sip.errors import LocalProtocolError
from frontdesk.sip.message import Request, Response, make_response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    ResponseReceived,
    StrayResponse,
    TransactionLayer,
    TransactionTimedOut,
    make_cancel,
    new_branch,
)


def test_timer_A_doubles_without_cap_and_timer_B_times_out() -> None:
    layer = TransactionLayer()
    txn = invite_out(layer)
    assert txn.state is S.CALLING
    log = advance(layer, 100.0)
    assert sends(log) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert log[-1][0] == 32.0 and log[-1][1] == [TransactionTimedOut(txn, "B")]
    assert txn.state is S.TERMINATED and len(layer) == 0


def test_provisional_stops_timers_A_and_B() -> None:
    layer = TransactionLayer()
    txn = invite_out(layer)
    trying = answer(txn, 100)
    assert layer.receive(trying, SERVER, 0.2) == [ResponseReceived(txn, trying)]
    ringing = answer(txn, 180)
    assert layer.receive(ringing, SERVER, 0.3) == [ResponseReceived(txn, ringing)]
    assert txn.state is S.PROCEEDING and txn.last_response is ringing
    assert layer.next_timer() is None


def test_non_2xx_final_is_acked_by_the_layer_and_timer_D_ends_it() -> None:
    layer = TransactionLayer()
    txn = invite_out(layer)
    busy = answer(txn, 486)
    assert layer.receive(busy, SERVER, 0.2) == [ResponseReceived(txn, busy)]
    out = layer.drain()
    assert statuses(out) == ["ACK"] and out[0][1] == SERVER
    ack = parsed(out[0][0])
    assert isinstance(ack, Request)
    assert ack.uri == txn.request.uri and str(ack.cseq) == "1 ACK"
    assert ack.top_via.branch == txn.request.top_via.branch
    assert ack.to.tag == "uas1" and ack.from_.tag == "ft1"
    assert layer.receive(answer(txn, 486), SERVER, 0.7) == []  # retransmission absorbed
    assert layer.drain() == out  # ... and ACKed again with the same bytes
    log = advance(layer, 100.0)
    assert [t for t, _, _ in log] == [32.2] and log[0][1] == []
    assert len(layer) == 0
    assert isinstance(layer.receive(answer(txn, 486), SERVER, 40.0)[0], StrayResponse)


def test_2xx_enters_accepted_and_every_2xx_goes_up_until_timer_M() -> None:
    layer = TransactionLayer()
    txn = invite_out(layer)
    ok = answer(txn, 200)
    assert layer.receive(ok, SERVER, 0.2) == [ResponseReceived(txn, ok)]
    assert txn.state is S.ACCEPTED and layer.drain() == []  # the TU ACKs a 2xx
    again = answer(txn, 200)
    assert layer.receive(again, SERVER, 0.7) == [ResponseReceived(txn, again)]
    fork = answer(txn, 200, to_tag="uas2")
    assert layer.receive(fork, SERVER, 0.8) == [ResponseReceived(txn, fork)]
    assert layer.receive(answer(txn, 180), SERVER, 0.9) == []  # late 1xx absorbed
    log = advance(layer, 100.0)
    assert [t for t, _, _ in log] == [32.2] and log[0][1] == [] and len(layer) == 0
    late = answer(txn, 200)
    assert layer.receive(late, SERVER, 33.0) == [StrayResponse(late, SERVER)]


def test_send_request_refuses_ack_missing_branch_and_duplicates() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError, match="ACK"):
        layer.send_request(req("ACK", branch=new_branch()), SERVER, 0.0)
    for bad in (
        "SIP/2.0/UDP 192.0.2.10:5070",
        "SIP/2.0/UDP 192.0.2.10:5070;branch=abc",
        "SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK",
    ):
        with pytest.raises(LocalProtocolError, match="branch"):
            layer.send_request(req("OPTIONS", via=bad), SERVER, 0.0)
    layer.send_request(req("OPTIONS", branch="z9hG4bKdup"), SERVER, 0.0)
    with pytest.raises(LocalProtocolError, match="already exists"):
        layer.send_request(req("OPTIONS", branch="z9hG4bKdup"), SERVER, 0.0)
    # a CANCEL shares its INVITE's branch but is a transaction of its own
    invite = layer.send_request(req(branch="z9hG4bKinv"), SERVER, 0.0)
    cancel = layer.send_request(make_cancel(invite.request), SERVER, 0.0)
    assert cancel is not invite and cancel.id != invite.id


def test_response_to_cancel_and_to_invite_reach_their_own_transactions() -> None:
    layer = TransactionLayer()
    invite = invite_out(layer)
    cancel = layer.send_request(make_cancel(invite.request), SERVER, 0.1)
    ok = make_response(cancel.request, 200, to_tag="uas1")
    terminated = answer(invite, 487)
    assert layer.receive(ok, SERVER, 0.2) == [ResponseReceived(cancel, ok)]
    assert layer.receive(terminated, SERVER, 0.2) == [ResponseReceived(invite, terminated)]
    assert cancel.state is S.COMPLETED and invite.state is S.COMPLETED


# --- non-INVITE client ---------------------------------------------------------------------------
def test_timer_E_doubles_to_t2_and_timer_F_times_out() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(req("OPTIONS", branch=new_branch()), SERVER, 0.0)
    layer.drain()
    log = advance(layer, 100.0)
    assert sends(log) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert log[-1][0] == 32.0 and log[-1][1] == [TransactionTimedOut(txn, "F")]
    assert len(layer) == 0


def test_timer_E_runs_at_t2_in_proceeding() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(req("REGISTER", branch=new_branch()), SERVER, 0.0)
    layer.drain()
    layer.receive(make_response(txn.request, 100), SERVER, 0.2)
    assert txn.state is S.PROCEEDING
    log = advance(layer, 100.0)
    assert sends(log) == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert log[-1][1] == [TransactionTimedOut(txn, "F")]


def test_non_invite_final_completes_absorbs_retransmissions_and_timer_K_ends_it() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(req("BYE", branch=new_branch()), SERVER, 0.0)
    layer.drain()
    ok = make_response(txn.request, 200)
    assert layer.receive(ok, SERVER, 0.1) == [ResponseReceived(txn, ok)]
    assert layer.receive(make_response(txn.request, 200), SERVER, 0.6) == []
    assert layer.drain() == []
    log = advance(layer, 100.0)
    assert [t for t, _, _ in log] == [5.1] and len(layer) == 0  # Timer K = T4


def test_stray_response() -> None:
    layer = TransactionLayer()
    resp = make_response(req(branch="z9hG4bKnobody"), 200, to_tag="x")
    assert layer.receive(resp, SERVER, 0.0) == [StrayResponse(resp, SERVER)]


# --- TCP: no retransmissions, zero linger timers ----------------------------------------------
TCP_SERVER = Peer("tcp", "198.51.100.1", 5060)


def test_tcp_client_never_retransmits_but_still_times_out() -> None:
    layer = TransactionLayer()
    inv = layer.send_request(req(branch=new_branch(), transport="TCP"), TCP_SERVER, 0.0)
    opt = layer.send_request(req("OPTIONS", branch=new_branch(), transport="TCP"), TCP_SERVER, 0.0)
    layer.drain()
    log = advance(layer, 100.0)
    assert sends(log) == []
    assert log == [(32.0, [TransactionTimedOut(inv, "B"), TransactionTimedOut(opt, "F")], [])]


def test_tcp_client_timers_D_and_K_are_zero() -> None:
    layer = TransactionLayer()
    inv = layer.send_request(req(branch=new_branch(), transport="TCP"), TCP_SERVER, 0.0)
    opt = layer.send_request(req("OPTIONS", branch=new_branch(), transport="TCP"), TCP_SERVER, 0.0)
    layer.drain()
    layer.receive(answer(inv, 486), TCP_SERVER, 0.1)
    layer.receive(make_response(opt.request, 200), TCP_SERVER, 0.1)
    assert statuses(layer.drain()) == ["ACK"]
    assert inv.state is S.TERMINATED and opt.state is S.TERMINATED
    assert len(layer) == 0 and layer.next_timer() is None


def test_tcp_server_no_retransmissions_and_timers_I_J_zero() -> None:
    layer = TransactionLayer()
    inv = new_server_txn(layer, source=UAC_TCP, transport="TCP")
    layer.send_response(inv, make_response(inv.request, 486, to_tag="t"), 0.0)
    opt = new_server_txn(layer, "OPTIONS", source=UAC_TCP, branch="z9hG4bKo", transport="TCP")
    layer.send_response(opt, make_response(opt.request, 200, to_tag="t"), 0.0)
    assert opt.state is S.TERMINATED  # Timer J = 0
    layer.drain()
    assert layer.next_timer() == 32.0  # only Timer H waits for the ACK
    layer.receive(req("ACK", to_tag="t", transport="TCP"), UAC_TCP, 1.0)
    assert inv.state is S.TERMINATED  # Timer I = 0
    assert layer.next_timer() is None and len(layer) == 0 and layer.drain() == []


def test_tcp_2xx_is_not_retransmitted_but_timer_L_still_reports() -> None:
    layer = TransactionLayer()
    inv = new_server_txn(layer, source=UAC_TCP, transport="TCP")
    layer.send_response(inv, make_response(inv.request, 200, to_tag="t"), 0.0)
    layer.drain()
    log = advance(layer, 100.0)
    assert sends(log) == [] and log == [(32.0, [TransactionTimedOut(inv, "L")], [])]


# --- housekeeping -----------------------------------------------------------------------------
def test_terminate_stops_everything() -> None:
    layer = TransactionLayer()
    txn = invite_out(layer)
    layer.terminate(txn)
    assert txn.state is S.TERMINATED and len(layer) == 0
    assert layer.next_timer() is None and advance(layer, 100.0) == []
    layer.terminate(txn)  # twice is harmless


def test_max_transactions_answers_503_statelessly() -> None:
    layer = TransactionLayer(max_transactions=1)
    new_server_txn(layer, "OPTIONS")
    assert layer.receive(req("OPTIONS", branch="z9hG4bKmore"), UAC, 0.0) == []
    out = layer.drain()
    assert statuses(out) == ["503"] and layer.rejected == 1 and len(layer) == 1
    assert parsed(out[0][0]).headers.get("Retry-After") == "5"


def test_cancelled_timers_do_not_pile_up_in_the_heap() -> None:
    layer = TransactionLayer()
    for i in range(5000):
        txn = layer.send_request(req("OPTIONS", branch=f"z9hG4bK{i}"), SERVER, 0.0)
        layer.receive(make_response(txn.request, 200), SERVER, 0.01)  # cancels E and F
    layer.drain()
    assert len(layer._heap) < 5000 * 2  # 5000 live K timers plus a bounded stale remainder
    assert advance(layer, 100.0) == [(5.01, [], [])]  # every Timer K at once
    assert len(layer) == 0 and layer._heap == []


def test_broken_message_is_dropped_and_counted() -> None:
    layer = TransactionLayer()
    bad = req("OPTIONS")
    bad.headers.remove("Via")
    assert layer.receive(bad, UAC, 0.0) == []
    resp = Response(200, "OK")
    assert layer.receive(resp, SERVER, 0.0) == []
    assert layer.dropped == 2


def test_peer_checks_its_transport() -> None:
    with pytest.raises(LocalProtocolError, match="lower case"):
        Peer("UDP", "192.0.2.1", 5060)
    assert Peer("tcp", "::1", 5060).reliable and not UAC.reliable
    assert str(Peer("udp", "::1", 5060)) == "udp:[::1]:5060"


def test_cancel_restarts_timer_B_for_an_invite_in_proceeding() -> None:
    layer = TransactionLayer()
    invite = invite_out(layer)
    layer.receive(answer(invite, 180), SERVER, 0.1)
    assert layer.next_timer() is None  # Proceeding: the TU's ring timeout decides
    cancel = layer.send_request(make_cancel(invite.request), SERVER, 10.0)
    layer.receive(make_response(cancel.request, 200, to_tag="uas1"), SERVER, 10.1)
    layer.drain()
    log = advance(layer, 100.0)  # the UAS never sends 487
    assert (42.0, [TransactionTimedOut(invite, "B")], []) in log
    assert invite.state is S.TERMINATED and len(layer) == 0


def test_cancel_keeps_the_earlier_timer_B_in_calling() -> None:
    layer = TransactionLayer()
    invite = invite_out(layer)
    layer.send_request(make_cancel(invite.request), SERVER, 10.0)
    log = advance(layer, 100.0)
    assert [(t, e) for t, e, _ in log if any(ev.transaction is invite for ev in e)] == [
        (32.0, [TransactionTimedOut(invite, "B")])
    ]


def test_timers_scale_with_t1_t2_t4() -> None:
    layer = TransactionLayer(t1=0.25, t2=1.0, t4=2.0)
    opt = layer.send_request(req("OPTIONS", branch=new_branch()), SERVER, 0.0)
    layer.drain()
    log = advance(layer, 100.0)
    assert sends(log)[:5] == [0.25, 0.75, 1.75, 2.75, 3.75]  # E: 0.25, 0.5, 1, then T2 = 1
    assert log[-1] == (16.0, [TransactionTimedOut(opt, "F")], [])  # F = 64*T1
    bye = layer.send_request(req("BYE", branch=new_branch()), SERVER, 100.0)
    layer.receive(make_response(bye.request, 200), SERVER, 100.0)
    layer.drain()
    assert advance(layer, 200.0) == [(102.0, [], [])]  # K = T4
    inv = layer.send_request(req(branch=new_branch()), SERVER, 200.0)
    layer.receive(answer(inv, 486), SERVER, 200.0)
    layer.drain()
    assert advance(layer, 300.0) == [(232.0, [], [])]  # D never below 32 s


def test_invalid_timer_settings_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match="T1"):
        TransactionLayer(t1=5.0, t2=4.0)


def test_a_2xx_after_a_non_2xx_final_goes_to_the_tu_as_stray() -> None:
    layer = TransactionLayer()
    txn = invite_out(layer)
    layer.receive(answer(txn, 486), SERVER, 0.1)
    late_fork = answer(txn, 200, to_tag="fork2")
    assert layer.receive(late_fork, SERVER, 0.2) == [StrayResponse(late_fork, SERVER)]
    assert txn.state is S.COMPLETED
