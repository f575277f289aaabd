"""Two transaction layers in memory (STYLE #6): a UAC and a UAS pass bytes to each other.

Every datagram is serialized by one layer and parsed again (``parse_message(bytes)``) before
the other layer sees it. The channel may drop or duplicate datagrams (hypothesis picks
which); whatever it does, each transaction must complete or time out the way RFC 3261 and
RFC 6026 say, and both layers must end with no transaction and no timer left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request, Response, make_response, parse_message
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    AckReceived,
    ClientTransaction,
    Event,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionLayer,
    TransactionState,
    TransactionTimedOut,
    new_branch,
    new_tag,
)

S = TransactionState


def first_word(data: bytes) -> str:
    """'INVITE', 'ACK', '100', '200' ... from the start line."""
    line = data.split(b"\r\n", 1)[0].decode()
    return line.split()[1] if line.startswith("SIP/2.0") else line.split()[0]


def make_request(method: str, transport: str, address: Peer) -> Request:
    h = Headers()
    h.add(
        "Via",
        f"SIP/2.0/{transport.upper()} {address.host}:{address.port};branch={new_branch()};rport",
    )
    h.add("Max-Forwards", "70")
    h.add("From", f"<sip:alice@example.com>;tag={new_tag()}")
    h.add("To", "<sip:bob@example.com>")
    h.add("Call-ID", new_tag() + "@example.com")
    h.add("CSeq", f"1 {method}")
    h.add("Contact", f"<sip:alice@{address.host}:{address.port}>")
    return Request(method, "sip:bob@example.com", h)


def make_2xx_ack(invite: Request, response: Response, address: Peer) -> Request:
    """The TU's ACK for a 2xx: a new branch, To from the response (RFC 3261 §13.2.2.4)."""
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP {address.host}:{address.port};branch={new_branch()};rport")
    h.add("Max-Forwards", "70")
    h.add("From", invite.headers.get("From") or "")
    h.add("To", response.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq.number} ACK")
    return Request("ACK", "sip:bob@192.0.2.20:5060", h)


@dataclass
class Pair:
    """A UAC and a UAS layer, their TUs, and a channel that drops/duplicates by index."""

    scenario: str  # "invite-200", "invite-486", "options-200"
    transport: str = "udp"
    drop: frozenset[int] = frozenset()
    drop_words: frozenset[str] = frozenset()  # e.g. {"ACK"}: lose every ACK
    duplicate: frozenset[int] = frozenset()
    answer_delay: float = 0.0
    now: float = 0.0
    client: TransactionLayer = field(default_factory=TransactionLayer)
    server: TransactionLayer = field(default_factory=TransactionLayer)
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    delivered: list[tuple[str, str, float]] = field(default_factory=list)  # (to, word, time)
    sent: list[tuple[str, str, float]] = field(default_factory=list)  # (from, word, time)
    pending_answers: list[tuple[float, RequestReceived]] = field(default_factory=list)
    index: int = 0
    client_timeout_at: float | None = None

    def __post_init__(self) -> None:
        self.client_peer = Peer(self.transport, "192.0.2.10", 5070)
        self.server_peer = Peer(self.transport, "192.0.2.20", 5060)

    # --- the channel ---------------------------------------------------------------------------
    def pump(self) -> None:
        """Deliver everything both layers want to send, until both are quiet."""
        while True:
            batch = [("server", d, p) for d, p in self.client.drain()]
            batch += [("client", d, p) for d, p in self.server.drain()]
            if not batch:
                return
            for to, data, dest in batch:
                self.sent.append(
                    ("client" if to == "server" else "server", first_word(data), self.now)
                )
                assert dest == (self.server_peer if to == "server" else self.client_peer)
                i = self.index
                self.index += 1
                if i in self.drop or first_word(data) in self.drop_words:
                    continue
                for _ in range(2 if i in self.duplicate else 1):
                    self.deliver(to, data)

    def deliver(self, to: str, data: bytes) -> None:
        message = parse_message(data, stream=self.transport == "tcp")
        self.delivered.append((to, first_word(data), self.now))
        if to == "server":
            events = self.server.receive(message, self.client_peer, self.now)
            self.server_events += events
            self.server_tu(events)
        else:
            events = self.client.receive(message, self.server_peer, self.now)
            self.client_events += events
            self.client_tu(events)

    # --- the TUs ---------------------------------------------------------------------------------
    def start(self) -> ClientTransaction:
        method = "OPTIONS" if self.scenario.startswith("options") else "INVITE"
        request = make_request(method, self.transport, self.client_peer)
        return self.client.send_request(request, self.server_peer, self.now)

    def server_tu(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                if event.request.method == "INVITE":
                    ringing = make_response(event.request, 180, to_tag="uas")
                    self.server.send_response(event.transaction, ringing, self.now)
                self.pending_answers.append((self.now + self.answer_delay, event))

    def answer_due(self) -> None:
        due = [p for p in self.pending_answers if p[0] <= self.now]
        self.pending_answers = [p for p in self.pending_answers if p[0] > self.now]
        for _, event in due:
            status = int(self.scenario.split("-")[1])
            final = make_response(event.request, status, to_tag="uas")
            self.server.send_response(event.transaction, final, self.now)

    def client_tu(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, ResponseReceived):
                r = event.response
                if r.cseq.method == "INVITE" and 200 <= r.status < 300:
                    ack = make_2xx_ack(event.transaction.request, r, self.client_peer)
                    self.client.send_stateless(ack, self.server_peer)

    # --- time --------------------------------------------------------------------------------------
    def run(self, until: float = 300.0) -> None:
        self.pump()
        while True:
            deadlines = [
                t for t in (self.client.next_timer(), self.server.next_timer()) if t is not None
            ]
            deadlines += [t for t, _ in self.pending_answers]
            if not deadlines or min(deadlines) > until:
                return
            self.now = min(deadlines)
            self.answer_due()
            self.client_events += (ce := self.client.handle_timer(self.now))
            if any(isinstance(e, TransactionTimedOut) for e in ce):
                self.client_timeout_at = self.now
            self.client_tu(ce)
            self.server_events += (se := self.server.handle_timer(self.now))
            self.server_tu(se)
            self.pump()

    def count(self, to: str, words: tuple[str, ...], before: float | None = None) -> int:
        return sum(
            1
            for t, w, at in self.delivered
            if t == to and w in words and (before is None or at < before)
        )


FINALS = tuple(str(s) for s in (200, 486))


def check_outcome(pair: Pair, txn: ClientTransaction) -> None:
    """Whatever the channel did, each side ended the way RFC 3261 / RFC 6026 say."""
    invite = txn.is_invite
    requests_in = pair.count("server", ("INVITE", "OPTIONS"))
    responses_in = pair.count("client", ("100", "180", *FINALS))
    finals_in = pair.count("client", FINALS)
    acks_in = pair.count("server", ("ACK",))
    client_timeouts = [e for e in pair.client_events if isinstance(e, TransactionTimedOut)]
    finals_up = [
        e
        for e in pair.client_events
        if isinstance(e, ResponseReceived) and e.response.status >= 200
    ]
    strays = [e for e in pair.client_events if isinstance(e, StrayResponse)]
    # --- client
    timed_out_at = pair.client_timeout_at
    if timed_out_at is not None:  # Timer B/F: exactly 64*T1, and only if nothing came back
        assert timed_out_at == 32.0
        assert client_timeouts == [TransactionTimedOut(txn, "B" if invite else "F")]
        assert pair.count("client", ("100", "180", *FINALS), before=timed_out_at) == 0
        assert finals_up == []
    elif finals_in:
        assert client_timeouts == [] and strays == []
        assert all(e.response.status == int(pair.scenario.split("-")[1]) for e in finals_up)
        two_xx = invite and pair.scenario.endswith("200")
        assert len(finals_up) == (finals_in if two_xx else 1)  # retransmitted non-2xx absorbed
    else:  # only provisionals got through: an INVITE waits in Proceeding for its TU
        assert invite and responses_in and txn.state is S.PROCEEDING and strays == []
        pair.client.terminate(txn)
    # --- server
    received = [e for e in pair.server_events if isinstance(e, RequestReceived)]
    assert len(received) == (1 if requests_in else 0)  # retransmissions absorbed
    server_timeouts = [e.timer for e in pair.server_events if isinstance(e, TransactionTimedOut)]
    acks_up = [e for e in pair.server_events if isinstance(e, AckReceived)]
    if pair.scenario == "invite-200" and requests_in:
        assert server_timeouts == ([] if acks_in else ["L"])
        assert len(acks_up) == acks_in and all(
            a.transaction is received[0].transaction for a in acks_up
        )
        first_ack = min((t for to, w, t in pair.delivered if w == "ACK"), default=None)
        if first_ack is not None:  # 2xx retransmissions stop at the first ACK
            assert not [
                t for src, w, t in pair.sent if src == "server" and w == "200" and t > first_ack
            ]
    elif pair.scenario == "invite-486" and requests_in:
        assert server_timeouts == ([] if acks_in else ["H"])
        assert acks_up == []  # the ACK for a non-2xx is absorbed by its transaction
        if timed_out_at is None:  # the layer ACKs every 486 that reaches it, retransmissions too
            assert sum(1 for src, w, _ in pair.sent if w == "ACK") == finals_in
    else:
        assert server_timeouts == []
    # --- both: nothing left behind
    assert pair.client.next_timer() is None and pair.server.next_timer() is None
    assert len(pair.client) == 0 and len(pair.server) == 0


SCENARIOS = st.sampled_from(["invite-200", "invite-486", "options-200"])


@settings(max_examples=400, deadline=None)
@given(
    scenario=SCENARIOS,
    drop=st.frozensets(st.integers(0, 30), max_size=25),
    duplicate=st.frozensets(st.integers(0, 30), max_size=5),
    answer_delay=st.sampled_from([0.0, 0.3, 2.5, 20.0]),
)
def test_lossy_channel_completes_or_times_out_correctly(
    scenario: str, drop: frozenset[int], duplicate: frozenset[int], answer_delay: float
) -> None:
    pair = Pair(scenario, drop=drop, duplicate=duplicate, answer_delay=answer_delay)
    txn = pair.start()
    pair.run()
    check_outcome(pair, txn)


def test_everything_lost_times_out_on_both_sides_the_rfc_way() -> None:
    for scenario, timer in (("invite-200", "B"), ("options-200", "F")):
        pair = Pair(scenario, drop=frozenset(range(100)))
        txn = pair.start()
        pair.run()
        assert pair.client_events == [TransactionTimedOut(txn, timer)]
        assert pair.server_events == [] and pair.now == 32.0
        sent = [w for _, w, _ in pair.sent]
        assert sent == (["INVITE"] * 7 if timer == "B" else ["OPTIONS"] * 11)


def test_all_acks_lost_server_reports_timer_L_client_saw_every_2xx() -> None:
    pair = Pair("invite-200", drop_words=frozenset(["ACK"]))
    txn = pair.start()
    pair.run()
    server_timeouts = [e for e in pair.server_events if isinstance(e, TransactionTimedOut)]
    assert [e.timer for e in server_timeouts] == ["L"]
    two_xx = [
        e
        for e in pair.client_events
        if isinstance(e, ResponseReceived) and e.response.status == 200
    ]
    assert len(two_xx) == pair.count("client", ("200",)) == 11  # the 2xx and 10 retransmissions
    assert txn.state is S.TERMINATED


def test_clean_udp_call_sends_each_message_once() -> None:
    pair = Pair("invite-200")
    txn = pair.start()
    pair.run()
    assert [(src, w) for src, w, _ in pair.sent] == [
        ("client", "INVITE"),
        ("server", "100"),
        ("server", "180"),
        ("server", "200"),
        ("client", "ACK"),
    ]
    assert [type(e) for e in pair.client_events] == [ResponseReceived] * 3
    assert [type(e) for e in pair.server_events] == [RequestReceived, AckReceived]
    assert txn.state is S.TERMINATED and pair.now == 32.0  # Timers L and M, both 64*T1


def test_clean_tcp_exchanges_have_no_retransmissions() -> None:
    for scenario, expected in (
        ("invite-200", ["INVITE", "100", "180", "200", "ACK"]),
        ("invite-486", ["INVITE", "100", "180", "486", "ACK"]),
        ("options-200", ["OPTIONS", "200"]),
    ):
        pair = Pair(scenario, transport="tcp", answer_delay=10.0)
        txn = pair.start()
        pair.run()
        assert [w for _, w, _ in pair.sent] == expected
        check_outcome(pair, txn)


def test_tcp_server_sees_the_source_port_in_via_rport() -> None:
    pair = Pair("options-200", transport="tcp")
    request = make_request("OPTIONS", "tcp", pair.client_peer)  # Via says port 5070 ...
    pair.client.send_request(request, pair.server_peer, 0.0)
    pair.client_peer = Peer("tcp", "192.0.2.10", 40111)  # ... the connection comes from 40111
    pair.run()  # (the pump asserts that the 200 goes to port 40111)
    received = pair.server_events[0]
    assert isinstance(received, RequestReceived)
    assert received.request.top_via.params["rport"] == "40111"
    assert received.request.top_via.params["received"] == "192.0.2.10"


def test_lost_2xx_leaves_the_invite_in_proceeding_for_its_tu() -> None:
    pair = Pair("invite-200", drop_words=frozenset(["200"]))
    txn = pair.start()
    pair.run()
    assert txn.state is S.PROCEEDING  # RFC 3261: no Timer B after a provisional
    assert [e.timer for e in pair.server_events if isinstance(e, TransactionTimedOut)] == ["L"]
    check_outcome(pair, txn)  # terminates the client transaction as its TU would
