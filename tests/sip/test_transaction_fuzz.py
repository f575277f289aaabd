"""Random interleavings on one transaction layer (hypothesis): requests and responses in,
TU commands, time jumps. The layer must never raise on input, must refuse exactly the
commands its state tables forbid, and must end empty — no transaction, no timer, no stale
heap entry — once the TU has answered everything and time has moved on.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from transaction_support import UAC, req

from frontdesk.sip.errors import LocalProtocolError
from frontdesk.sip.message import make_response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    AckReceived,
    CancelReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TransactionLayer,
    TransactionState,
    TransactionTimedOut,
)
from frontdesk.sip.transaction_state import status_class

S = TransactionState
SERVER = Peer("udp", "198.51.100.1", 5060)
BRANCHES = ["z9hG4bKb0", "z9hG4bKb1", "z9hG4bKb2", "rfc2543"]

incoming = st.tuples(
    st.just("in"),
    st.sampled_from(["INVITE", "OPTIONS", "ACK", "CANCEL", "BYE"]),
    st.integers(0, len(BRANCHES) - 1),
    st.booleans(),  # ACK: same branch as the INVITE (non-2xx ACK) or a new one (2xx ACK)
)
respond = st.tuples(st.just("respond"), st.integers(0, 15), st.sampled_from([100, 180, 200, 486]))
send = st.tuples(st.just("send"), st.sampled_from(["INVITE", "OPTIONS"]), st.booleans())
reply = st.tuples(st.just("reply"), st.integers(0, 15), st.sampled_from([100, 180, 200, 404]))
wait = st.tuples(st.just("wait"), st.sampled_from([0.1, 0.5, 1.0, 4.0, 31.0, 33.0]))
kill = st.tuples(st.just("terminate"), st.integers(0, 15), st.booleans())
OPS = st.lists(st.one_of(incoming, respond, send, reply, wait, kill), max_size=60)


class Run:
    def __init__(self) -> None:
        self.layer = TransactionLayer()
        self.now = 0.0
        self.servers: list[ServerTransaction] = []
        self.clients: list[ClientTransaction] = []
        self.sent = 0

    def feed(self, events: list[object]) -> None:
        for e in events:
            if isinstance(e, RequestReceived | CancelReceived):
                assert e.transaction not in self.servers
                self.servers.append(e.transaction)
            elif isinstance(e, ResponseReceived):
                assert e.transaction in self.clients
            elif isinstance(e, TransactionTimedOut):
                assert e.transaction.state is S.TERMINATED
            else:
                assert isinstance(e, AckReceived | StrayResponse)

    def incoming(self, method: str, b: int, same_branch: bool) -> None:
        branch = BRANCHES[b]
        via = None if branch != "rfc2543" else "SIP/2.0/UDP 192.0.2.10:5070"
        if method == "ACK" and not same_branch:
            branch = branch + "ack"
        to_tag = "t" if method == "ACK" else ""
        message = req(
            method,
            branch,
            via=via,
            to_tag=to_tag,
            cseq=1 if method in ("INVITE", "ACK", "CANCEL") else 2,
        )
        self.feed(self.layer.receive(message, UAC, self.now))  # must never raise

    def respond(self, i: int, status: int) -> None:
        if not self.servers:
            return
        txn = self.servers[i % len(self.servers)]
        allowed = (txn.state, "send " + status_class(status)) in txn._table
        try:
            self.layer.send_response(txn, make_response(txn.request, status, to_tag="t"), self.now)
        except LocalProtocolError:
            assert not allowed
        else:
            assert allowed

    def send(self, method: str, tcp: bool) -> None:
        self.sent += 1
        dest = Peer("tcp", SERVER.host, SERVER.port) if tcp else SERVER
        self.clients.append(
            self.layer.send_request(req(method, f"z9hG4bKc{self.sent}"), dest, self.now)
        )

    def reply(self, i: int, status: int) -> None:
        if self.clients:
            txn = self.clients[i % len(self.clients)]
            response = make_response(txn.request, status, to_tag="u")
            self.feed(self.layer.receive(response, txn.peer, self.now))

    def check(self) -> None:
        alive = [t for t in [*self.servers, *self.clients] if t.state is not S.TERMINATED]
        assert len(self.layer) == len(alive)
        deadline = self.layer.next_timer()
        assert deadline is None or deadline > self.now  # nothing overdue after handle_timer


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_random_interleavings_keep_the_layer_consistent(ops: list[tuple[object, ...]]) -> None:
    run = Run()
    for op in ops:
        kind = op[0]
        if kind == "in":
            run.incoming(op[1], op[2], op[3])  # type: ignore[arg-type]
        elif kind == "respond":
            run.respond(op[1], op[2])  # type: ignore[arg-type]
        elif kind == "send":
            run.send(op[1], op[2])  # type: ignore[arg-type]
        elif kind == "reply":
            run.reply(op[1], op[2])  # type: ignore[arg-type]
        elif kind == "terminate":
            pool: list[ServerTransaction] | list[ClientTransaction] = (
                run.servers if op[2] else run.clients
            )
            if pool:
                run.layer.terminate(pool[op[1] % len(pool)])  # type: ignore[index, operator]
        else:
            run.now += op[1]  # type: ignore[operator]
            run.feed(run.layer.handle_timer(run.now))
        run.layer.drain()
        run.check()
    # the TU answers what is still open and gives up on INVITEs stuck in Proceeding
    for txn in run.servers:
        if txn.state in (S.TRYING, S.PROCEEDING):
            run.layer.send_response(txn, make_response(txn.request, 500, to_tag="t"), run.now)
    for client in run.clients:
        if client.is_invite and client.state is S.PROCEEDING:
            run.layer.terminate(client)
    run.now += 100.0
    run.feed(run.layer.handle_timer(run.now))
    assert len(run.layer) == 0 and run.layer.next_timer() is None
    assert run.layer._heap == [] and run.layer._stale == 0 and run.layer._accepted == {}
