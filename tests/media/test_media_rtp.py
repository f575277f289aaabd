"""RtpStream on loopback: G.711 both ways, paced RFC 4733 digits, and bad input dropped with
a log line (garbage, wrong payload type, foreign source)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import socket
import struct

import pytest
from aiortp import DtmfEvent, RtpPacket

from frontdesk.media.clock import MediaClock
from frontdesk.media.rtp import PortRange, RtpStream, StreamParams, encode_frames
from frontdesk.media.wav import peak

PCM = struct.pack("<1600h", *(int(8000 * math.sin(i / 7.0)) for i in range(1600)))


def pair(clock: MediaClock, codec: str = "PCMU", pt: int = 0) -> tuple[RtpStream, RtpStream]:
    ports = PortRange("127.0.0.1", 0, 0)
    sa, sb = ports.bind_pair(), ports.bind_pair()
    pa, pb = sa[0].getsockname()[1], sb[0].getsockname()[1]
    a = RtpStream(StreamParams(codec, pt, 101, ("127.0.0.1", pb)), clock, "a", sa)
    b = RtpStream(StreamParams(codec, pt, 101, ("127.0.0.1", pa)), clock, "b", sb)
    return a, b


@pytest.mark.parametrize(("codec", "pt"), [("PCMU", 0), ("PCMA", 8)])
def test_audio_played_by_one_stream_is_heard_by_the_other(codec: str, pt: int) -> None:
    async def run() -> bytes:
        clock = MediaClock()
        a, b = pair(clock, codec, pt)
        heard = bytearray()
        b.on_audio = lambda pcm, ts: heard.extend(pcm)
        await a.start()
        await b.start()
        done = await a.play(encode_frames(PCM, codec))
        await asyncio.sleep(0.1)
        await a.close()
        await b.close()
        assert done is True
        return bytes(heard)

    heard = asyncio.run(run())
    start = heard.find(b"\x00\x00" * 4)  # silence before the prompt, then the prompt itself
    assert peak(heard) > 6000
    samples = memoryview(heard).cast("h")
    ref = memoryview(PCM).cast("h")
    # find the first loud sample and compare the waveform after it (G.711 is ~1 % error)
    first = next(i for i, s in enumerate(samples) if abs(s) > 500)
    ref_first = next(i for i, s in enumerate(ref) if abs(s) > 500)
    errors = [abs(samples[first + i] - ref[ref_first + i]) for i in range(1000)]
    assert max(errors) < 400, (start, max(errors))


def test_dtmf_is_sent_paced_and_received_once_per_digit() -> None:
    async def run() -> tuple[list[str], list[float]]:
        clock = MediaClock()
        a, b = pair(clock)
        digits: list[str] = []
        arrivals: list[float] = []
        b.on_dtmf = digits.append
        original = b._on_rtp

        def spy(data: bytes, addr: tuple[str, int]) -> None:
            if data[1] & 0x7F == 101:
                arrivals.append(asyncio.get_running_loop().time())
            original(data, addr)

        b._on_rtp = spy  # type: ignore[method-assign]
        await a.start()
        await b.start()
        a.send_dtmf("19#")
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(digits) == 3:
                break
        await asyncio.sleep(0.1)  # the redundant end packets of '#'
        await a.close()
        await b.close()
        return digits, arrivals

    digits, arrivals = asyncio.run(run())
    assert digits == ["1", "9", "#"]
    assert len(arrivals) == 3 * 7
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.010  # never a burst: one telephone-event packet per 20 ms frame


def test_garbage_wrong_payload_type_and_foreign_sources_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> RtpStream:
        clock = MediaClock()
        a, b = pair(clock)
        heard: list[bytes] = []
        b.on_audio = lambda pcm, ts: heard.append(pcm)
        await a.start()
        await b.start()
        await asyncio.sleep(0.06)  # a's packets latch b to a's address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rogue:
            rogue.bind(("127.0.0.1", 0))
            target = ("127.0.0.1", b.local_port)
            rogue.sendto(b"\x00garbage!" * 3, target)
            rogue.sendto(b"\x80", target)
            rogue.sendto(RtpPacket(0, 0, 1, 1, 7, b"\xff" * 160).serialize(), target)
        a._sender.send_raw(18, b"\x00" * 20, 0, addr=a.remote)  # type: ignore[union-attr]
        await asyncio.sleep(0.06)
        await a.close()
        await b.close()
        assert heard, "audio from the real peer must still be heard"
        return b

    with caplog.at_level(logging.INFO, logger="frontdesk.media.rtp"):
        b = asyncio.run(run())
    s = b.stats
    assert (s.garbage, s.wrong_payload_type, s.foreign_source) == (2, 1, 1)
    text = caplog.text
    assert "not RTP" in text and "payload type 18" in text and "negotiated 0 (PCMU)" in text
    assert "dropped a packet from 127.0.0.1" in text
    assert "received" in text and "wrong payload type [18]" in text


def test_port_range_hands_out_even_rtp_ports_and_says_when_full() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1] // 2 * 2 + 2
    ports = PortRange("127.0.0.1", base, base + 3)
    first = ports.bind_pair()
    second = ports.bind_pair()
    try:
        numbers = sorted(s[0].getsockname()[1] for s in (first, second))
        assert all(n % 2 == 0 for n in numbers)
        with pytest.raises(RuntimeError, match=r"no free RTP port pair in .* widen"):
            ports.bind_pair()
    finally:
        for sock in (*first, *second):
            sock.close()


def test_dtmf_event_payload_is_rfc4733() -> None:
    assert DtmfEvent(event=11, end=True, volume=10, duration=800).serialize() == b"\x0b\x8a\x03\x20"
