"""Helpers shared by the transaction-layer tests: requests as a UA sends them, and a clock
moved by hand (STYLE #2) that fires every timer at its exact deadline."""

from __future__ import annotations

from frontdesk.sip.message import Request, Response, make_response, parse_message
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    ClientTransaction,
    Event,
    RequestReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionState,
    new_branch,
)

S = TransactionState
UAC = Peer("udp", "192.0.2.10", 5070)
UAC_TCP = Peer("tcp", "192.0.2.10", 40123)
SERVER = Peer("udp", "198.51.100.1", 5060)


def wire(
    method: str = "INVITE",
    branch: str = "z9hG4bKtest1",
    *,
    via: str | None = None,
    cseq: int = 1,
    to_tag: str = "",
    from_tag: str = "ft1",
    call_id: str = "call-1",
    uri: str = "sip:bob@example.com",
    transport: str = "UDP",
) -> bytes:
    """A request as a UA at 192.0.2.10:5070 would send it."""
    top = via if via is not None else f"SIP/2.0/{transport} 192.0.2.10:5070;branch={branch}"
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {top}",
        "Max-Forwards: 70",
        f'From: "Alice" <sip:alice@example.com>;tag={from_tag}',
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@192.0.2.10:5070>",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def req(*args: object, **kw: object) -> Request:
    msg = parse_message(wire(*args, **kw))  # type: ignore[arg-type]
    assert isinstance(msg, Request)
    return msg


def parsed(data: bytes) -> Request | Response:
    return parse_message(data)


def statuses(out: list[tuple[bytes, Peer]]) -> list[str]:
    """First line of every datagram: '100', '486', 'ACK', 'INVITE' ..."""
    result = []
    for data, _ in out:
        first = data.split(b"\r\n", 1)[0].decode()
        result.append(first.split()[1] if first.startswith("SIP/2.0") else first.split()[0])
    return result


def advance(layer: TransactionLayer, until: float) -> list[tuple[float, list[Event], list[str]]]:
    """Fire every timer up to ``until`` at its exact deadline; log what each firing did."""
    log = []
    while (t := layer.next_timer()) is not None and t <= until:
        events = layer.handle_timer(t)
        log.append((t, events, statuses(layer.drain())))
    return log


def sends(log: list[tuple[float, list[Event], list[str]]]) -> list[float]:
    return [t for t, _, out in log if out]


def new_server_txn(
    layer: TransactionLayer, method: str = "INVITE", source: Peer = UAC, **kw: object
) -> ServerTransaction:
    events = layer.receive(req(method, **kw), source, 0.0)  # type: ignore[arg-type]
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    layer.drain()
    return events[0].transaction


def invite_out(layer: TransactionLayer, dest: Peer = SERVER) -> ClientTransaction:
    txn = layer.send_request(req(branch=new_branch()), dest, 0.0)
    assert statuses(layer.drain()) == ["INVITE"]
    return txn


def answer(txn: ClientTransaction, status: int, to_tag: str = "uas1") -> Response:
    return make_response(txn.request, status, to_tag=to_tag)
