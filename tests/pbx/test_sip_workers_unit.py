"""The parts of `serve --sip-workers` that need no process: who owns a REGISTER, the link's
messages and its queue, mirroring bindings, and the guard's hooks (the processes themselves:
tests/integration/test_sip_workers.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frontdesk.pbx import worker_link
from frontdesk.pbx.guard import AuthFailureGuard, SourceBlocked
from frontdesk.pbx.location import Binding, LocationService
from frontdesk.pbx.worker_link import (
    ROUTE,
    Link,
    decode_binding,
    decode_block,
    decode_message,
    decode_stats,
    encode_binding,
    encode_block,
    encode_message,
    encode_stats,
)
from frontdesk.sip.affinity import owner, register_target
from frontdesk.sip.message import parse_message
from frontdesk.sip.peer import Peer


def register(to: str, *, to_name: str = "To", method: str = "REGISTER") -> bytes:
    return (
        f"{method} sip:pbx.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc\r\n"
        "From: <sip:101@pbx.example.com>;tag=1\r\n"
        f"{to_name}: {to}\r\n"
        "Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContact: <sip:101@192.0.2.10>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(("to", "name", "expected"), [
    ("<sip:101@pbx.example.com>", "To", ("101", "pbx.example.com")),
    ("<sip:101@PBX.Example.COM:5060>", "To", ("101", "pbx.example.com")),
    ('"Office Manager" <sip:101@pbx.example.com>;tag=x', "To", ("101", "pbx.example.com")),
    ("sip:102@10.0.0.5;transport=udp", "t", ("102", "10.0.0.5")),
    ("<sips:alice@example.org>", "TO", ("alice", "example.org")),
])
def test_the_raw_reading_agrees_with_the_parser(to: str, name: str,
                                                expected: tuple[str, str]) -> None:
    data = register(to, to_name=name)
    assert register_target(data) == expected
    user, host = parse_message(data).to_user_host
    assert (user, host.lower()) == expected


def test_only_register_requests_have_a_target() -> None:
    assert register_target(register("<sip:101@pbx.example.com>", method="OPTIONS")) is None
    assert register_target(b"SIP/2.0 200 OK\r\nTo: <sip:101@x>\r\n\r\n") is None
    assert register_target(b"REGISTER sip:x SIP/2.0\r\nFrom: <sip:1@x>\r\n\r\n") is None
    # a To header in the body does not count
    assert register_target(b"REGISTER sip:x SIP/2.0\r\nFrom: <sip:1@x>\r\n\r\nTo: <sip:2@y>") is None


def test_owner_is_stable_and_splits_extensions_between_processes() -> None:
    assert owner(7, "101", 1) == 0  # no workers: the main process
    assert owner(7, "101", 2) == 1  # one worker owns every extension
    counts = [0, 0, 0, 0]
    for i in range(3000):
        counts[owner(1, f"user{i:05d}", 4)] += 1
    assert counts[0] == 0, counts  # the main process owns none while workers run
    assert all(800 < c < 1200 for c in counts[1:]), counts
    # the tenant is part of the key: the same numbers in two tenants split differently
    assert [owner(1, f"{n}", 3) for n in range(100, 140)] != [
        owner(2, f"{n}", 3) for n in range(100, 140)]


@given(st.binary(max_size=300))
def test_the_raw_reading_never_raises(data: bytes) -> None:
    result = register_target(b"REGISTER " + data)
    assert result is None or isinstance(result[0], str)


@pytest.mark.parametrize("peer", [Peer("udp", "192.0.2.1", 5060), Peer("tcp", "2001:db8::1", 1),
                                  Peer("udp", "127.0.0.1", 65535)])
def test_link_messages_round_trip(peer: Peer) -> None:
    data = register("<sip:101@pbx.example.com>")
    for target in (0, 1, ROUTE):
        assert decode_message(encode_message(b"M", target, peer, data)) == (target, peer, data)
    binding = Binding(tenant_id=3, aor="101", contact_uri="sip:101@192.0.2.1", peer=peer,
                      expires_at=1234.5, call_id="c", cseq=7, user_agent="Yealink",
                      instance_id="<urn:uuid:1>", reg_id=1, path="<sip:edge>", reachable=False)
    assert decode_binding(encode_binding("upsert", binding)) == ("upsert", binding)
    assert decode_block(encode_block("198.51.100.7", 600.0)) == ("198.51.100.7", 600.0)
    assert decode_stats(encode_stats({"registers": 5})) == {"registers": 5}


def _binding(contact: str, expires_at: float = 100.0) -> Binding:
    return Binding(tenant_id=1, aor="101", contact_uri=contact,
                   peer=Peer("udp", "192.0.2.1", 5060), expires_at=expires_at,
                   call_id="c", cseq=1)


def test_mirrored_bindings_replace_add_and_remove_without_persisting() -> None:
    persisted: list[str] = []
    location = LocationService(lambda kind, b: persisted.append(kind))
    location.apply("upsert", _binding("sip:a@x", 100))
    location.apply("upsert", _binding("sip:b@x", 100))
    location.apply("upsert", _binding("sip:a@x", 200))  # a refresh replaces
    assert [(b.contact_uri, b.expires_at) for b in location.lookup(1, "101", 0)] == [
        ("sip:b@x", 100), ("sip:a@x", 200)]
    location.apply("delete", _binding("sip:b@x"))
    location.apply("delete", _binding("sip:a@x"))
    assert location.lookup(1, "101", 0) == [] and len(location) == 0
    assert persisted == []  # the owning process persisted them


def test_guard_hooks_report_failures_and_blocks_and_take_blocks_from_elsewhere() -> None:
    failures: list[str] = []
    blocks: list[SourceBlocked] = []
    guard = AuthFailureGuard(3, 60, 600)
    guard.on_failure = lambda source, now: failures.append(source)
    guard.on_block = blocks.append
    for t in range(3):
        guard.record_failure("192.0.2.9", float(t))
    assert failures == ["192.0.2.9"] * 3
    assert [(b.source, b.blocked_until) for b in blocks] == [("192.0.2.9", 602.0)]
    assert not guard.record_failure("192.0.2.9", 10.0)  # already blocked: not reported
    assert failures == ["192.0.2.9"] * 3
    other = AuthFailureGuard(3, 60, 600)
    assert not other.is_blocked("192.0.2.9", 5.0)
    other.impose("192.0.2.9", 30.0, 5.0)
    assert other.is_blocked("192.0.2.9", 34.0) and not other.is_blocked("192.0.2.9", 36.0)


def test_link_queues_when_the_peer_is_slow_and_delivers_everything_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_link, "MAX_QUEUED", 5000)

    async def scenario() -> tuple[list[bytes], int]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        received: list[bytes] = []
        sender = Link(a, lambda frame: None)
        # the receiver is not reading yet: the kernel buffer fills and the link queues
        frames = [b"B" + str(i).encode() * 50 for i in range(2000)]
        for frame in frames:
            sender.send(frame)
        droppable = [b"M" + str(i).encode() * 50 for i in range(4000)]
        for frame in droppable:
            sender.send(frame, droppable=True)
        assert sender.pending_frames() > 0
        receiver = Link(b, received.append)
        for _ in range(500):
            await asyncio.sleep(0.01)
            if not sender.pending_frames():
                break
        await asyncio.sleep(0.05)  # what is still in the kernel's buffer
        dropped = sender.dropped
        sender.close()
        receiver.close()
        return received, dropped

    received, dropped = asyncio.run(scenario())
    bindings = [f for f in received if f[:1] == b"B"]
    assert bindings == [b"B" + str(i).encode() * 50 for i in range(2000)]  # none lost
    messages = [f for f in received if f[:1] == b"M"]
    assert messages == [b"M" + str(i).encode() * 50 for i in range(len(messages))]
    assert dropped == 4000 - len(messages) and dropped > 0  # beyond MAX_QUEUED: dropped
