"""Transaction states and the transition tables (RFC 3261 §17, RFC 6026), as data.

Theory of operation
-------------------
A SIP transaction is one request and every response to it, plus the retransmissions that
make that exchange survive packet loss over UDP. There are four kinds of state machine:

==========  =====================  ====================================================
kind        who                    states
==========  =====================  ====================================================
ICT         INVITE client          Calling, Proceeding, Accepted, Completed, Terminated
NICT        non-INVITE client      Trying, Proceeding, Completed, Terminated
IST         INVITE server          Proceeding, Accepted, Completed, Confirmed, Terminated
NIST        non-INVITE server      Trying, Proceeding, Completed, Terminated
==========  =====================  ====================================================

Every table below maps ``(state, event) -> next state``. An event is one of

* a received response, classified ``"1xx"``, ``"2xx"`` or ``"3xx-6xx"`` (client side);
* ``"send 1xx"``, ``"send 2xx"``, ``"send 3xx-6xx"``: the TU sends a response (server side);
* ``"request"``: a retransmission of the request arrived (server side);
* ``"ack"``: an ACK matched an INVITE server transaction;
* ``"timer X"``: timer X fired.

A pair that is not in a table is not a transition: a received message is absorbed (a
retransmitted final response in Completed, a 1xx after a final) and a command raises
`LocalProtocolError` (the TU sent a response the state does not allow — our bug).

What the layer does on each transition (the *action*) depends only on the kind, the old
state and the event; `frontdesk.sip.transaction` performs them:

* ICT: the request is retransmitted on Timer A (T1, doubling without a cap, UDP only)
  until a response arrives or Timer B (64*T1) gives up (TransactionTimedOut "B"). Timer B
  stops in Proceeding; sending a CANCEL for the INVITE (same branch) starts it again there,
  because an INVITE that gets no final response after a CANCEL must end 64*T1 later
  (RFC 3261 §9.1) instead of waiting forever. A 3xx-6xx gets an ACK built by the layer
  (same branch, §17.1.1.3), re-sent for every retransmitted final; Completed lasts Timer D
  (max(32 s, 64*T1), 0 over TCP), and a 2xx arriving then (a late fork) goes to the TU as
  StrayResponse. A 2xx moves to Accepted (RFC 6026) for Timer M (64*T1); every 2xx
  (retransmissions, other forks) goes to the TU, whose job it is to ACK each one.
* NICT: Timer E retransmits (T1 doubling to T2; every T2 once in Proceeding) until a
  final response or Timer F (64*T1, TransactionTimedOut "F"); Completed lasts Timer K
  (T4, 0 over TCP) and absorbs retransmitted finals.
* IST: the layer sends 100 Trying at once (``auto_trying``). A retransmitted INVITE gets
  the last response again. A 2xx moves to Accepted: the layer retransmits the 2xx (T1
  doubling to T2, UDP only; timer "2xx") until an ACK matches it by (Call-ID, CSeq number,
  From tag); Timer L (64*T1) ends Accepted and reports TransactionTimedOut "L" if no ACK
  came, so the TU can send BYE. A 3xx-6xx moves to Completed: Timer G retransmits it
  (UDP), Timer H (64*T1) gives up (TransactionTimedOut "H"), an ACK moves to Confirmed,
  which absorbs further ACKs for Timer I (T4, 0 over TCP).
* NIST: retransmitted requests are absorbed (Trying) or answered with the last response
  (Proceeding, Completed); Completed lasts Timer J (64*T1, 0 over TCP).

Over a reliable transport (TCP) no message is retransmitted by this layer, and timers
D, I, J and K are zero: the transaction ends at once.

RFC 3261 gives a server transaction no timer before its final response, so the TU must
answer every request it was given (or call ``terminate``); likewise an INVITE client
transaction in Proceeding waits for the TU's own ring timeout and CANCEL.

This module is data and small classes only: it never does I/O and never reads a clock.
"""

from __future__ import annotations

from enum import StrEnum

from frontdesk.sip.message import Request, Response
from frontdesk.sip.peer import Peer


class TransactionState(StrEnum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


S = TransactionState
Table = dict[tuple[TransactionState, str], TransactionState]

INVITE_CLIENT: Table = {
    (S.CALLING, "timer A"): S.CALLING,
    (S.CALLING, "timer B"): S.TERMINATED,
    (S.CALLING, "1xx"): S.PROCEEDING,
    (S.CALLING, "2xx"): S.ACCEPTED,
    (S.CALLING, "3xx-6xx"): S.COMPLETED,
    (S.PROCEEDING, "1xx"): S.PROCEEDING,
    (S.PROCEEDING, "2xx"): S.ACCEPTED,
    (S.PROCEEDING, "3xx-6xx"): S.COMPLETED,
    (S.PROCEEDING, "timer B"): S.TERMINATED,  # only re-armed by a CANCEL (RFC 3261 §9.1)
    (S.ACCEPTED, "2xx"): S.ACCEPTED,
    (S.ACCEPTED, "timer M"): S.TERMINATED,
    (S.COMPLETED, "3xx-6xx"): S.COMPLETED,
    (S.COMPLETED, "timer D"): S.TERMINATED,
}

NON_INVITE_CLIENT: Table = {
    (S.TRYING, "timer E"): S.TRYING,
    (S.TRYING, "timer F"): S.TERMINATED,
    (S.TRYING, "1xx"): S.PROCEEDING,
    (S.TRYING, "2xx"): S.COMPLETED,
    (S.TRYING, "3xx-6xx"): S.COMPLETED,
    (S.PROCEEDING, "timer E"): S.PROCEEDING,
    (S.PROCEEDING, "timer F"): S.TERMINATED,
    (S.PROCEEDING, "1xx"): S.PROCEEDING,
    (S.PROCEEDING, "2xx"): S.COMPLETED,
    (S.PROCEEDING, "3xx-6xx"): S.COMPLETED,
    (S.COMPLETED, "2xx"): S.COMPLETED,
    (S.COMPLETED, "3xx-6xx"): S.COMPLETED,
    (S.COMPLETED, "timer K"): S.TERMINATED,
}

INVITE_SERVER: Table = {
    (S.PROCEEDING, "request"): S.PROCEEDING,
    (S.PROCEEDING, "send 1xx"): S.PROCEEDING,
    (S.PROCEEDING, "send 2xx"): S.ACCEPTED,
    (S.PROCEEDING, "send 3xx-6xx"): S.COMPLETED,
    (S.ACCEPTED, "request"): S.ACCEPTED,
    (S.ACCEPTED, "send 2xx"): S.ACCEPTED,
    (S.ACCEPTED, "ack"): S.ACCEPTED,
    (S.ACCEPTED, "timer 2xx"): S.ACCEPTED,
    (S.ACCEPTED, "timer L"): S.TERMINATED,
    (S.COMPLETED, "request"): S.COMPLETED,
    (S.COMPLETED, "timer G"): S.COMPLETED,
    (S.COMPLETED, "timer H"): S.TERMINATED,
    (S.COMPLETED, "ack"): S.CONFIRMED,
    (S.CONFIRMED, "request"): S.CONFIRMED,
    (S.CONFIRMED, "ack"): S.CONFIRMED,
    (S.CONFIRMED, "timer I"): S.TERMINATED,
}

NON_INVITE_SERVER: Table = {
    (S.TRYING, "request"): S.TRYING,
    (S.TRYING, "send 1xx"): S.PROCEEDING,
    (S.TRYING, "send 2xx"): S.COMPLETED,
    (S.TRYING, "send 3xx-6xx"): S.COMPLETED,
    (S.PROCEEDING, "request"): S.PROCEEDING,
    (S.PROCEEDING, "send 1xx"): S.PROCEEDING,
    (S.PROCEEDING, "send 2xx"): S.COMPLETED,
    (S.PROCEEDING, "send 3xx-6xx"): S.COMPLETED,
    (S.COMPLETED, "request"): S.COMPLETED,
    (S.COMPLETED, "timer J"): S.TERMINATED,
}

TABLES: dict[str, Table] = {
    "ICT": INVITE_CLIENT,
    "NICT": NON_INVITE_CLIENT,
    "IST": INVITE_SERVER,
    "NIST": NON_INVITE_SERVER,
}

# Each timer runs in one of three slots of its transaction; arming a slot cancels the timer
# that ran there before (lazy cancellation: the heap entry stays, its sequence is stale).
RETRANSMIT, TIMEOUT, LINGER = 0, 1, 2
TIMER_SLOT: dict[str, int] = {
    "A": RETRANSMIT,
    "E": RETRANSMIT,
    "G": RETRANSMIT,
    "2xx": RETRANSMIT,
    "B": TIMEOUT,
    "F": TIMEOUT,
    "H": TIMEOUT,
    "L": TIMEOUT,
    "D": LINGER,
    "I": LINGER,
    "J": LINGER,
    "K": LINGER,
    "M": LINGER,
}


def status_class(status: int) -> str:
    """``"1xx"``, ``"2xx"`` or ``"3xx-6xx"``: the response classes the tables know."""
    if status < 200:
        return "1xx"
    return "2xx" if status < 300 else "3xx-6xx"


class ServerTransaction:
    """An incoming request and the responses the TU sends to it.

    ``peer`` is where the request came from; every response goes back there (RFC 3581).
    """

    __slots__ = (
        "_ack_key",
        "_interval",
        "_key",
        "_table",
        "_timers",
        "_wire",
        "acked",
        "id",
        "is_invite",
        "last_response",
        "peer",
        "request",
        "state",
    )

    def __init__(self, key: tuple[str, ...], request: Request, peer: Peer, tid: str) -> None:
        self.id = tid
        self.request = request
        self.peer = peer
        self.is_invite = request.method == "INVITE"
        self.state = S.PROCEEDING if self.is_invite else S.TRYING
        self.last_response: Response | None = None
        self.acked = False  # an ACK matched this INVITE transaction
        self._key = key
        self._table = INVITE_SERVER if self.is_invite else NON_INVITE_SERVER
        self._wire = b""  # the last response, serialized once
        self._interval = 0.0
        self._timers = [0, 0, 0]
        self._ack_key: tuple[str, int, str] | None = None

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.id} {self.request.method} {self.state}>"


class ClientTransaction:
    """An outgoing request, its retransmissions and the responses to it."""

    __slots__ = (
        "_ack_wire",
        "_interval",
        "_key",
        "_table",
        "_timers",
        "_wire",
        "id",
        "is_invite",
        "last_response",
        "peer",
        "request",
        "state",
    )

    def __init__(self, key: tuple[str, str], request: Request, peer: Peer, wire: bytes) -> None:
        self.id = f"{key[0]};{key[1]}"
        self.request = request
        self.peer = peer
        self.is_invite = request.method == "INVITE"
        self.state = S.CALLING if self.is_invite else S.TRYING
        self.last_response: Response | None = None
        self._key = key
        self._table = INVITE_CLIENT if self.is_invite else NON_INVITE_CLIENT
        self._wire = wire  # the request, serialized once
        self._ack_wire = b""  # the ACK for a 3xx-6xx, serialized once
        self._interval = 0.0
        self._timers = [0, 0, 0]

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.id} {self.state}>"


Transaction = ServerTransaction | ClientTransaction
