"""RFC 4733 state machines: one paced packet per 20 ms frame out, each digit once in."""

from __future__ import annotations

import pytest
from aiortp import DtmfEvent

from frontdesk.media.dtmf import DtmfError, DtmfReceiver, DtmfSender


def frames(sender: DtmfSender, count: int, start_ts: int = 1000) -> list[object]:
    out = []
    for i in range(count):
        out.append(sender.next_packet(start_ts + 160 * i))
    return out


def test_sender_paces_one_packet_per_frame_with_three_end_packets() -> None:
    sender = DtmfSender(duration_ms=100, gap_ms=60)
    sender.queue("5")
    sent = frames(sender, 12)
    packets = [p for p in sent if p is not None]
    events = [DtmfEvent.parse(p.payload) for p in packets]  # type: ignore[attr-defined]
    assert len(packets) == 5 + 2  # 5 frames of 20 ms (last one has E), then 2 more end packets
    assert all(e.event == 5 for e in events)
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [p.marker for p in packets] == [True] + [False] * 6  # type: ignore[attr-defined]
    assert {p.timestamp for p in packets} == {1000}  # type: ignore[attr-defined]
    assert sent[7:] == [None] * 5 and not sender.busy


def test_sender_separates_digits_by_a_gap_and_uses_new_timestamps() -> None:
    sender = DtmfSender(duration_ms=40, gap_ms=40)
    sender.queue("1#")
    sent = frames(sender, 14)
    kinds = ["-" if p is None else DtmfEvent.parse(p.payload).digit for p in sent]  # type: ignore[attr-defined]
    assert "".join(kinds) == "1111--####----"
    stamps = sorted({p.timestamp for p in sent if p is not None})  # type: ignore[attr-defined]
    assert stamps == [1000, 1000 + 6 * 160]


def test_sender_rejects_what_is_not_a_digit() -> None:
    with pytest.raises(DtmfError, match="'x' is not a DTMF digit"):
        DtmfSender().queue("1x")


def payload(digit: int, end: bool, duration: int) -> bytes:
    return DtmfEvent(event=digit, end=end, volume=10, duration=duration).serialize()


def test_receiver_reports_each_digit_once_despite_repeated_end_packets() -> None:
    rx = DtmfReceiver()
    got: list[str] = []
    for d in (160, 320):
        got += rx.packet(payload(11, False, d), 500, 0.0)
    for _ in range(3):
        got += rx.packet(payload(11, True, 480), 500, 0.05)
    got += rx.packet(payload(11, True, 480), 900, 0.3)  # next '#' press
    assert got == ["#", "#"]


def test_receiver_reports_a_digit_whose_end_packets_were_lost() -> None:
    rx = DtmfReceiver(end_timeout=0.25)
    assert rx.packet(payload(3, False, 160), 100, 1.0) == []
    assert rx.poll(1.1) == []
    assert rx.poll(1.3) == ["3"]
    assert rx.poll(2.0) == []
    rx.packet(payload(4, False, 160), 200, 3.0)
    assert rx.packet(payload(5, False, 160), 400, 3.05) == ["4"]  # new event before 4 ended


def test_receiver_ignores_garbage_payloads() -> None:
    rx = DtmfReceiver()
    assert rx.packet(b"\x01", 1, 0.0) == []
    assert rx.packet(payload(40, True, 160), 2, 0.0) == []  # not a DTMF event code
    assert rx.malformed == 2
