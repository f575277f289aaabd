"""The sans-I/O SIP transaction layer (RFC 3261 §17, RFC 6026 Accepted, RFC 3581 rport).

Messages in (`TransactionLayer.receive`), events out; commands in (``send_request``,
``send_response``, ``send_stateless``, ``terminate``), ``(bytes, Peer)`` pairs out
(`TransactionLayer.drain`). Time is a parameter: the adapter calls ``handle_timer(now)``
when ``next_timer()`` is due. The state machines are tables in
`frontdesk.sip.transaction_state` (read its "theory of operation"); matching rules are in
`frontdesk.sip.transaction_match`.

Cost per message: one dict lookup to find the transaction, no regular expression for
well-formed Via values, each outgoing message serialized once (retransmissions reuse the
bytes). Timers live in one heap of ``(deadline, seq, transaction, timer)`` entries;
cancelling a timer only forgets its sequence number (the stale entry is skipped, and the
heap is compacted when stale entries outnumber live ones). Terminated transactions leave
every index at once.

This module must never open a socket, touch asyncio or read the wall clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from frontdesk.sip.errors import LocalProtocolError, RemoteProtocolError
from frontdesk.sip.events import (
    AckReceived,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionTimedOut,
)
from frontdesk.sip.message import Request, Response, make_response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction_match import (
    TopVia,
    ack_key,
    check_outgoing_branch,
    client_key,
    make_cancel,
    make_non2xx_ack,
    new_branch,
    new_tag,
    rewrite_top_via,
    server_key,
    tag_of,
    top_via,
)
from frontdesk.sip.transaction_state import (
    TABLES,
    TIMER_SLOT,
    ClientTransaction,
    ServerTransaction,
    Transaction,
    TransactionState,
    status_class,
)

__all__ = [
    "TABLES",
    "AckReceived",
    "CancelReceived",
    "ClientTransaction",
    "Event",
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "StrayResponse",
    "Transaction",
    "TransactionLayer",
    "TransactionState",
    "TransactionTimedOut",
    "make_cancel",
    "new_branch",
    "new_tag",
]

S = TransactionState
_TimerEntry = tuple[float, int, Transaction, str]
_COMPACT_MIN = 1024  # never compact a heap smaller than this


class TransactionLayer:
    """Every client and server transaction of one SIP endpoint."""

    def __init__(
        self,
        *,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        auto_trying: bool = True,
        max_transactions: int = 200_000,
    ) -> None:
        if not 0 < t1 <= t2:
            raise LocalProtocolError(f"timers need 0 < T1 <= T2, got T1={t1} T2={t2}")
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.auto_trying = auto_trying
        self.max_transactions = max_transactions
        self.dropped = 0  # requests/responses too broken to match (RemoteProtocolError)
        self.rejected = 0  # new requests answered 503 because of max_transactions
        self._servers: dict[tuple[str, ...], ServerTransaction] = {}
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._accepted: dict[tuple[str, int, str], ServerTransaction] = {}
        self._out: list[tuple[bytes, Peer]] = []
        self._heap: list[_TimerEntry] = []
        self._seq = 0
        self._stale = 0
        self._timer_actions: dict[str, Callable[[Transaction, str, float], list[Event]]] = {
            "A": self._timer_retransmit_request,
            "E": self._timer_retransmit_request,
            "G": self._timer_retransmit_response,
            "2xx": self._timer_retransmit_response,
            "B": self._timer_timeout,
            "F": self._timer_timeout,
            "H": self._timer_timeout,
            "L": self._timer_timeout,
            "D": self._timer_end,
            "I": self._timer_end,
            "J": self._timer_end,
            "K": self._timer_end,
            "M": self._timer_end,
        }

    # --- introspection --------------------------------------------------------------------
    def __len__(self) -> int:
        """How many transactions are alive (server and client)."""
        return len(self._servers) + len(self._clients)

    def find_server(self, request: Request) -> ServerTransaction | None:
        """The server transaction ``request`` (or a retransmission of it) belongs to."""
        method = "INVITE" if request.method == "ACK" else request.method
        return self._servers.get(server_key(request, top_via(request), method))

    # --- incoming ---------------------------------------------------------------------------
    def receive(self, message: Request | Response, source: Peer, now: float) -> list[Event]:
        """Feed one parsed message that arrived from ``source``; return what the TU must know."""
        try:
            if isinstance(message, Request):
                return self._receive_request(message, source, now)
            return self._receive_response(message, source, now)
        except RemoteProtocolError:
            self.dropped += 1
            return []

    def _receive_request(self, request: Request, source: Peer, now: float) -> list[Event]:
        via = top_via(request)
        method = request.method
        key = server_key(request, via, "INVITE" if method == "ACK" else method)
        txn = self._servers.get(key)
        if txn is not None and not (via.rfc3261 or self._same_2543_to_tag(txn, request)):
            txn = None  # same RFC 2543 key, different To tag: not this transaction
        if method == "ACK":
            return self._receive_ack(txn, request, via, source, now)
        if txn is not None:
            self._request_retransmitted(txn)
            return []
        rewrite_top_via(request, via, source)
        if len(self._servers) + len(self._clients) >= self.max_transactions:
            self._reject_overload(request, source)
            return []
        txn = ServerTransaction(key, request, source, _server_id(via, method))
        self._servers[key] = txn
        if method == "CANCEL":
            return self._receive_cancel(txn, request, via, now)
        if txn.is_invite and self.auto_trying:
            self.send_response(txn, make_response(request, 100), now)
        return [RequestReceived(txn, request, source)]

    def _same_2543_to_tag(self, txn: ServerTransaction, request: Request) -> bool:
        """RFC 2543 matching compares To tags: the request's, or for an ACK our response's."""
        if request.method == "ACK" and txn.last_response is not None:
            return tag_of(request, "To") == tag_of(txn.last_response, "To")
        return tag_of(request, "To") == tag_of(txn.request, "To")

    def _request_retransmitted(self, txn: ServerTransaction) -> None:
        state = txn.state
        if (state, "request") not in txn._table:
            return
        resend = state is S.PROCEEDING or state is S.COMPLETED
        if (resend or (state is S.ACCEPTED and not txn.acked)) and txn._wire:
            self._out.append((txn._wire, txn.peer))

    def _receive_ack(
        self,
        txn: ServerTransaction | None,
        request: Request,
        via: TopVia,
        source: Peer,
        now: float,
    ) -> list[Event]:
        if txn is not None:
            if txn.state is S.COMPLETED or txn.state is S.CONFIRMED:
                self._ack_non2xx(txn, now)
                return []
            if txn.state is not S.ACCEPTED:
                txn = None
        if txn is None:
            txn = self._accepted.get(ack_key(request))
        if txn is not None:
            txn.acked = True
            self._cancel_timer(txn, "2xx")
        rewrite_top_via(request, via, source)
        return [AckReceived(request, source, txn)]

    def _ack_non2xx(self, txn: ServerTransaction, now: float) -> None:
        if txn.state is S.CONFIRMED:
            return  # retransmitted ACK: absorbed
        txn.state = txn._table[(txn.state, "ack")]
        txn.acked = True
        self._cancel_timer(txn, "G")
        self._cancel_timer(txn, "H")
        self._linger(txn, "I", self.t4, now)

    def _receive_cancel(
        self, txn: ServerTransaction, request: Request, via: TopVia, now: float
    ) -> list[Event]:
        invite = self._servers.get(server_key(request, via, "INVITE"))
        if invite is not None and not (via.rfc3261 or self._same_2543_to_tag(invite, request)):
            invite = None
        if invite is None:
            self.send_response(txn, make_response(request, 481, to_tag=new_tag()), now)
        return [CancelReceived(txn, request, invite)]

    def _reject_overload(self, request: Request, source: Peer) -> None:
        self.rejected += 1
        if request.method != "ACK":
            response = make_response(request, 503, to_tag=new_tag())
            response.headers.add("Retry-After", "5")
            self.send_stateless(response, source)

    def _receive_response(self, response: Response, source: Peer, now: float) -> list[Event]:
        txn = self._clients.get(client_key(response))
        if txn is None:
            return [StrayResponse(response, source)]
        event = status_class(response.status)
        old = txn.state
        new = txn._table.get((old, event))
        if new is None:  # e.g. a 1xx after the final response: absorbed
            if event == "2xx" and txn.is_invite:  # a fork's 2xx after a 3xx-6xx: TU ACKs + BYEs
                return [StrayResponse(response, source)]
            return []
        if old is new and old is S.COMPLETED:
            if txn._ack_wire:  # retransmitted 3xx-6xx: ACK it again
                self._out.append((txn._ack_wire, txn.peer))
            return []
        txn.state = new
        txn.last_response = response
        if new is not old:
            self._client_entered(txn, old, new, response, now)
        return [ResponseReceived(txn, response)]

    def _client_entered(
        self,
        txn: ClientTransaction,
        old: TransactionState,
        new: TransactionState,
        response: Response,
        now: float,
    ) -> None:
        """Timers and ACK on a client state change caused by ``response``."""
        if new is S.PROCEEDING:
            if txn.is_invite:  # Timers A and B only run in Calling
                self._cancel_timer(txn, "A")
                self._cancel_timer(txn, "B")
            return
        self._cancel_timer(txn, "A" if txn.is_invite else "E")
        self._cancel_timer(txn, "B" if txn.is_invite else "F")
        if new is S.ACCEPTED:
            self._arm(txn, "M", 64 * self.t1, now)
        elif txn.is_invite:  # 3xx-6xx: ACK it, then linger for retransmissions (Timer D)
            txn._ack_wire = bytes(make_non2xx_ack(txn.request, response))
            self._out.append((txn._ack_wire, txn.peer))
            self._linger(txn, "D", max(32.0, 64 * self.t1), now)
        else:
            self._linger(txn, "K", self.t4, now)

    # --- outgoing -----------------------------------------------------------------------------
    def send_request(self, request: Request, dest: Peer, now: float) -> ClientTransaction:
        """Start a client transaction: send ``request`` to ``dest`` and retransmit as needed.

        The request must already carry its top Via with a ``z9hG4bK`` branch (`new_branch`).
        ACK is not a transaction: send it with `send_stateless`.
        """
        if request.method == "ACK":
            raise LocalProtocolError("ACK has no client transaction: use send_stateless")
        branch = check_outgoing_branch(request)
        key = (branch, request.method)
        if key in self._clients:
            raise LocalProtocolError(
                f"a client transaction for branch {branch} {request.method} already exists"
            )
        wire = bytes(request)
        txn = ClientTransaction(key, request, dest, wire)
        self._clients[key] = txn
        self._out.append((wire, dest))
        if not dest.reliable:
            txn._interval = self.t1
            self._arm(txn, "A" if txn.is_invite else "E", self.t1, now)
        self._arm(txn, "B" if txn.is_invite else "F", 64 * self.t1, now)
        if request.method == "CANCEL":  # RFC 3261 §9.1: the INVITE ends 64*T1 from now at most
            invite = self._clients.get((branch, "INVITE"))
            if invite is not None and invite.state is S.PROCEEDING:
                self._arm(invite, "B", 64 * self.t1, now)
        return txn

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send ``response`` on ``transaction`` (to the peer the request came from)."""
        txn = transaction
        if not isinstance(txn, ServerTransaction):
            raise LocalProtocolError(f"send_response needs a ServerTransaction, got {txn!r}")
        if not 100 <= response.status <= 699:
            raise LocalProtocolError(f"cannot send status {response.status}")
        event = "send " + status_class(response.status)
        old = txn.state
        new = txn._table.get((old, event))
        if new is None:
            raise LocalProtocolError(
                f"cannot send {response.status} on {txn.request.method} transaction {txn.id} "
                f"in state {old}"
            )
        wire = bytes(response)
        self._out.append((wire, txn.peer))
        txn._wire = wire
        txn.last_response = response
        txn.state = new
        if new is not old:
            self._server_entered(txn, new, now)

    def _server_entered(self, txn: ServerTransaction, new: TransactionState, now: float) -> None:
        """Timers on a server state change caused by a response the TU sent."""
        reliable = txn.peer.reliable
        if new is S.ACCEPTED:
            key = ack_key(txn.request)
            txn._ack_key = key
            self._accepted[key] = txn
            if not reliable:
                txn._interval = self.t1
                self._arm(txn, "2xx", self.t1, now)
            self._arm(txn, "L", 64 * self.t1, now)
        elif new is S.COMPLETED and txn.is_invite:
            if not reliable:
                txn._interval = self.t1
                self._arm(txn, "G", self.t1, now)
            self._arm(txn, "H", 64 * self.t1, now)
        elif new is S.COMPLETED:
            self._linger(txn, "J", 64 * self.t1, now)
            # kept 32 s only to answer retransmissions with _wire: at thousands of
            # REGISTERs/s the parsed views would be most of what the collector walks
            txn.request.forget_views()
            if txn.last_response is not None:
                txn.last_response.forget_views()

    def send_stateless(self, message: Request | Response, dest: Peer) -> None:
        """Send outside any transaction (an ACK for a 2xx, a stateless reply)."""
        self._out.append((bytes(message), dest))

    def terminate(self, transaction: Transaction) -> None:
        """The TU gives up on ``transaction``: no more retransmissions, timers or events."""
        self._terminate(transaction)

    def drain(self) -> list[tuple[bytes, Peer]]:
        """Datagrams / stream writes to perform, in order; the queue is emptied."""
        out = self._out
        self._out = []
        return out

    # --- timers --------------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        """The earliest deadline of a live timer, or None when nothing is pending."""
        heap = self._heap
        while heap:
            _, seq, txn, timer = heap[0]
            if txn._timers[TIMER_SLOT[timer]] == seq:
                return heap[0][0]
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``; return the events that causes."""
        events: list[Event] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, txn, timer = heapq.heappop(heap)
            slot = TIMER_SLOT[timer]
            if txn._timers[slot] != seq:
                self._stale -= 1
                continue
            txn._timers[slot] = 0
            if (txn.state, "timer " + timer) not in txn._table:
                continue
            events.extend(self._timer_actions[timer](txn, timer, now))
        return events

    def _timer_retransmit_request(self, txn: Transaction, timer: str, now: float) -> list[Event]:
        assert isinstance(txn, ClientTransaction)
        self._out.append((txn._wire, txn.peer))
        if txn.is_invite:  # Timer A doubles without a cap
            txn._interval *= 2
            self._arm(txn, "A", txn._interval, now)
        else:  # Timer E doubles up to T2; in Proceeding it is T2
            interval = self.t2 if txn.state is S.PROCEEDING else min(2 * txn._interval, self.t2)
            txn._interval = interval
            self._arm(txn, "E", interval, now)
        return []

    def _timer_retransmit_response(self, txn: Transaction, timer: str, now: float) -> list[Event]:
        assert isinstance(txn, ServerTransaction)
        self._out.append((txn._wire, txn.peer))
        txn._interval = min(2 * txn._interval, self.t2)
        self._arm(txn, timer, txn._interval, now)
        return []

    def _timer_timeout(self, txn: Transaction, timer: str, now: float) -> list[Event]:
        self._terminate(txn)
        if timer == "L" and isinstance(txn, ServerTransaction) and txn.acked:
            return []  # Accepted ends normally once the 2xx was ACKed
        return [TransactionTimedOut(txn, timer)]

    def _timer_end(self, txn: Transaction, timer: str, now: float) -> list[Event]:
        self._terminate(txn)
        return []

    def _arm(self, txn: Transaction, timer: str, delay: float, now: float) -> None:
        self._seq += 1
        seq = self._seq
        slot = TIMER_SLOT[timer]
        if txn._timers[slot]:
            self._stale += 1
        txn._timers[slot] = seq
        heapq.heappush(self._heap, (now + delay, seq, txn, timer))

    def _cancel_timer(self, txn: Transaction, timer: str) -> None:
        slot = TIMER_SLOT[timer]
        if txn._timers[slot]:
            txn._timers[slot] = 0
            self._stale += 1
            self._maybe_compact()

    def _linger(self, txn: Transaction, timer: str, delay: float, now: float) -> None:
        """Timers D, I, J, K: wait over UDP, end at once over a reliable transport."""
        if txn.peer.reliable:
            self._terminate(txn)
        else:
            self._arm(txn, timer, delay, now)

    def _maybe_compact(self) -> None:
        heap = self._heap
        if self._stale > _COMPACT_MIN and 2 * self._stale > len(heap):
            heap[:] = [e for e in heap if e[2]._timers[TIMER_SLOT[e[3]]] == e[1]]
            heapq.heapify(heap)  # in place: handle_timer may be iterating this list
            self._stale = 0

    def _terminate(self, txn: Transaction) -> None:
        if txn.state is S.TERMINATED:
            return
        txn.state = S.TERMINATED
        timers = txn._timers
        for slot in (0, 1, 2):
            if timers[slot]:
                timers[slot] = 0
                self._stale += 1
        if isinstance(txn, ServerTransaction):
            if self._servers.get(txn._key) is txn:
                del self._servers[txn._key]
            if txn._ack_key is not None and self._accepted.get(txn._ack_key) is txn:
                del self._accepted[txn._ack_key]
        elif self._clients.get(txn._key) is txn:
            del self._clients[txn._key]
        self._maybe_compact()


def _server_id(via: TopVia, method: str) -> str:
    if via.rfc3261:
        return f"{via.branch};{via.sent_by};{method}"
    return f"rfc2543;{via.sent_by};{new_branch()};{method}"
