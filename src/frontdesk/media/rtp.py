"""One server-side RTP audio stream: G.711 out on the shared 20 ms clock, audio and RFC 4733
digits in, with bad input counted and logged instead of trusted.

Built from aiortp's parts — `RtpTransport` (the datagram protocol, STUN answers, RTCP
demultiplexing), `RtpSender` (sequence numbers, timestamps, SSRC), `RtpPacket.parse` and
its µ-law codec (its A-law flips every sample's sign, so `media.g711` has our own) — but
not on its `RTPSession`, for three measured reasons:
RTPSession runs one clock task per session (the benchmark needs one clock for hundreds of
sessions, `media.clock`), its DtmfSender writes a whole digit as a burst (RFC 4733 packets
must be paced 20 ms apart, `media.dtmf`), and it feeds packets of any payload type into
its jitter buffer and decoder (a wrong payload type must be dropped and named).

Sockets are bound synchronously (`PortRange.bind_pair`) so the SIP side can put the port
in its SDP answer at once; `start()` then wraps them in the event loop. While nothing is
being played the stream sends G.711 silence, so the far end's jitter buffer and NAT
bindings stay alive. The remote address follows the first valid packet when it differs
from the SDP (symmetric RTP behind NAT); after that, packets from other sources are dropped.

This module never touches SIP, files or the database, and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiortp import RtpPacket, RtpTransport
from aiortp.codecs import Codec, PcmuCodec
from aiortp.sender import RtpSender

from frontdesk.media.clock import MediaClock
from frontdesk.media.dtmf import DtmfReceiver, DtmfSender
from frontdesk.media.g711 import ALawCodec

log = logging.getLogger("frontdesk.media.rtp")

SAMPLES_PER_FRAME = 160
FRAME_BYTES = SAMPLES_PER_FRAME * 2  # 16-bit PCM
CODECS: dict[str, Codec] = {"PCMU": PcmuCodec(), "PCMA": ALawCodec()}  # see media.g711
SILENCE = {"PCMU": b"\xff" * SAMPLES_PER_FRAME, "PCMA": b"\xd5" * SAMPLES_PER_FRAME}
COMFORT_NOISE_PT = 13
_HEADER = struct.Struct("!BBHII")
LOG_EVERY = 500  # after the first bad packet of a kind, log one line per this many more


class MediaPortsExhausted(RuntimeError):
    """No RTP port pair is free in the configured range."""


def encode_frames(pcm: bytes, codec: str) -> list[bytes]:
    """16-bit mono 8 kHz PCM -> 20 ms G.711 payloads (the last one padded with silence)."""
    enc = CODECS[codec]
    remainder = len(pcm) % FRAME_BYTES
    if remainder:
        pcm += b"\x00" * (FRAME_BYTES - remainder)
    encoded = enc.encode(pcm)
    return [encoded[i : i + SAMPLES_PER_FRAME] for i in range(0, len(encoded), SAMPLES_PER_FRAME)]


class PortRange:
    """Even/odd (RTP/RTCP) UDP port pairs from ``low``..``high`` on ``host``.

    ``low == 0`` asks the OS for the RTP port (RTCP then tries the next port up). A
    rotating cursor keeps a just-closed pair from being reused at once, so late packets
    of an ended call do not land in a new one.
    """

    def __init__(self, host: str, low: int, high: int) -> None:
        if low and (low > high or high > 65535 or low < 1024):
            raise ValueError(f"RTP port range {low}-{high} is not valid: use e.g. 30000-31999")
        self.host = host
        self.low = low + (low % 2)
        self.high = high
        self._cursor = self.low

    def __str__(self) -> str:
        return f"{self.low}-{self.high}" if self.low else "OS-assigned"

    def bind_pair(self) -> tuple[socket.socket, socket.socket]:
        if not self.low:
            for _ in range(50):
                pair = self._try_pair(0)
                if pair is not None:
                    return pair
        else:
            pairs = max(1, (self.high - self.low + 1) // 2)
            for _ in range(pairs):
                port = self._cursor
                self._cursor = port + 2 if port + 3 <= self.high else self.low
                pair = self._try_pair(port)
                if pair is not None:
                    return pair
        raise MediaPortsExhausted(
            f"no free RTP port pair in {self} on {self.host}: every pair is in use; widen "
            "the range (FRONTDESK_RTP_PORTS=LOW-HIGH) or end some calls"
        )

    def _try_pair(self, port: int) -> tuple[socket.socket, socket.socket] | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((self.host, port))
            rtcp.bind((self.host, rtp.getsockname()[1] + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            return None
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return rtp, rtcp


@dataclass(frozen=True, slots=True)
class StreamParams:
    """What the SDP offer/answer decided for one audio stream."""

    codec: str  # PCMU or PCMA
    payload_type: int
    dtmf_payload_type: int | None
    remote: tuple[str, int]


@dataclass(slots=True)
class RtpStats:
    sent: int = 0
    received: int = 0
    audio: int = 0
    dtmf_packets: int = 0
    digits: int = 0
    garbage: int = 0
    wrong_payload_type: int = 0
    foreign_source: int = 0
    rtcp: int = 0
    late: int = 0
    first_rx: float | None = None
    last_rx: float | None = None
    wrong_types: set[int] = field(default_factory=set)


class _Playback:
    __slots__ = ("done", "frames", "position")

    def __init__(self, frames: Sequence[bytes], done: asyncio.Future[bool]) -> None:
        self.frames = frames
        self.position = 0
        self.done = done


class RtpStream:
    """One audio stream of one media session (see the module docstring)."""

    def __init__(
        self,
        params: StreamParams,
        clock: MediaClock,
        label: str,
        sockets: tuple[socket.socket, socket.socket],
    ) -> None:
        if params.codec not in CODECS:
            raise ValueError(f"codec {params.codec!r} is not supported (use PCMU or PCMA)")
        self.params = params
        self.clock = clock
        self.label = label
        self.codec = params.codec
        self.remote = params.remote
        self._sockets = sockets
        self.local_port = int(sockets[0].getsockname()[1])
        self._latched = False
        self._transport: RtpTransport | None = None
        self._rtcp: RtpTransport | None = None
        self._sender: RtpSender | None = None
        self._decoder = CODECS[params.codec]
        self._silence = SILENCE[params.codec]
        self._playback: _Playback | None = None
        self._dtmf_out = DtmfSender()
        self._dtmf_in = DtmfReceiver()
        self._last_audio_seq: int | None = None
        self._ssrc: int | None = None
        self.stats = RtpStats()
        self.on_audio: Callable[[bytes, int], None] | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        #: a live source (echo, bridging): the next encoded frame, consulted when no prompt
        #: is playing; None from it means silence this frame
        self.source: Callable[[], bytes | None] | None = None
        self.closed = False
        #: True: send nothing (the caller is being re-INVITEd to another phone, whose RTP
        #: must be the only one it gets from then on; pbx.callcontrol_live)
        self.paused = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"RtpStream({self.label}, :{self.local_port} -> {self.remote[0]}:{self.remote[1]})"

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        rtp_sock, rtcp_sock = self._sockets
        rtp = RtpTransport(on_rtp=self._on_rtp, on_rtcp=self._on_rtcp)
        await loop.create_datagram_endpoint(lambda: rtp, sock=rtp_sock)
        rtcp = RtpTransport(on_rtp=self._on_rtcp, on_rtcp=self._on_rtcp)
        await loop.create_datagram_endpoint(lambda: rtcp, sock=rtcp_sock)
        self._transport, self._rtcp = rtp, rtcp
        self._sender = RtpSender(rtp, self.params.payload_type, enable_history=False)
        self._sender.timestamp_increment = SAMPLES_PER_FRAME
        self.clock.add(self)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.clock.remove(self)
        self.stop_playback()
        for transport in (self._transport, self._rtcp):
            if transport is not None:
                transport.close()
        if self._transport is None:  # never started: the sockets are still ours
            for sock in self._sockets:
                sock.close()
        s = self.stats
        problems = ""
        if s.garbage or s.wrong_payload_type or s.foreign_source:
            problems = (
                f"; dropped {s.garbage} non-RTP, {s.wrong_payload_type} wrong payload "
                f"type {sorted(s.wrong_types)}, {s.foreign_source} from other sources"
            )
        log.info(
            "rtp %s closed: sent %d, received %d audio + %d DTMF packets (%d digits)%s",
            self.label,
            s.sent,
            s.audio,
            s.dtmf_packets,
            s.digits,
            problems,
        )

    def fail(self, exc: BaseException) -> None:
        """The clock calls this when ``tick`` raised; the owner ends the call."""
        if self.on_failure is not None:
            self.on_failure(exc)

    # --- sending ------------------------------------------------------------------------
    def play(self, frames: Sequence[bytes]) -> asyncio.Future[bool]:
        """Start sending ``frames`` (replacing what was playing). The future becomes True
        when the last frame has left, False when playback was stopped first."""
        loop = self._loop or asyncio.get_running_loop()
        self.stop_playback()
        done: asyncio.Future[bool] = loop.create_future()
        if not frames:
            done.set_result(True)
            return done
        self._playback = _Playback(frames, done)
        return done

    def stop_playback(self) -> None:
        playback, self._playback = self._playback, None
        if playback is not None and not playback.done.done():
            playback.done.set_result(False)

    @property
    def playing(self) -> bool:
        return self._playback is not None

    def send_dtmf(self, digits: str) -> None:
        """Queue RFC 4733 digits (needs a negotiated telephone-event payload type)."""
        if self.params.dtmf_payload_type is None:
            raise ValueError(
                f"rtp {self.label}: the peer did not offer telephone-event, so "
                "digits cannot be sent in RTP"
            )
        self._dtmf_out.queue(digits)

    @property
    def sending_dtmf(self) -> bool:
        return self._dtmf_out.busy

    def tick(self) -> None:
        """One 20 ms frame: a telephone-event packet, the next prompt frame, or silence."""
        sender = self._sender
        if sender is None or self.closed or self.paused:
            return
        timestamp = sender.current_timestamp
        event = self._dtmf_out.next_packet(timestamp)
        if event is not None and self.params.dtmf_payload_type is not None:
            sender.send_raw(
                self.params.dtmf_payload_type,
                event.payload,
                event.timestamp,
                marker=int(event.marker),
                addr=self.remote,
            )
        else:
            sender.send_frame(self._next_frame(), timestamp, addr=self.remote)
        sender.advance_timestamp()
        self.stats.sent += 1
        if self._loop is not None:
            for digit in self._dtmf_in.poll(self._loop.time()):
                self._digit(digit)

    def _next_frame(self) -> bytes:
        playback = self._playback
        if playback is None:
            live = self.source() if self.source is not None else None
            return live if live is not None else self._silence
        frame = playback.frames[playback.position]
        playback.position += 1
        if playback.position >= len(playback.frames):
            self._playback = None
            if not playback.done.done():
                playback.done.set_result(True)
        return frame

    # --- receiving ----------------------------------------------------------------------
    def _on_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        stats = self.stats
        stats.received += 1
        if len(data) < 12 or data[0] >> 6 != 2:
            self._garbage(data, addr, "not RTP (wrong version or too short)")
            return
        if data[0] == 0x80:  # no padding, extension or CSRCs: the usual case, read directly
            _, marker_pt, seq, timestamp, ssrc = _HEADER.unpack_from(data)
            pt, payload = marker_pt & 0x7F, data[12:]
        else:
            try:
                packet = RtpPacket.parse(data)
            except ValueError as exc:
                self._garbage(data, addr, str(exc))
                return
            pt, seq, timestamp = packet.payload_type, packet.sequence_number, packet.timestamp
            ssrc, payload = packet.ssrc, packet.payload
        if not self._source_ok(addr):
            return
        now = self._loop.time() if self._loop is not None else 0.0
        if stats.first_rx is None:
            stats.first_rx = now
        stats.last_rx = now
        if pt == self.params.payload_type:
            self._on_audio(seq, timestamp, ssrc, payload)
        elif pt == self.params.dtmf_payload_type:
            stats.dtmf_packets += 1
            for digit in self._dtmf_in.packet(payload, timestamp, now):
                self._digit(digit)
        elif pt != COMFORT_NOISE_PT:
            self._wrong_payload_type(pt, addr)

    def _source_ok(self, addr: tuple[str, int]) -> bool:
        if addr == self.remote:
            self._latched = True
            return True
        if not self._latched:
            log.info(
                "rtp %s: media comes from %s:%d, not %s:%d as the SDP said; sending "
                "there (symmetric RTP)",
                self.label,
                addr[0],
                addr[1],
                *self.remote,
            )
            self.remote = addr
            self._latched = True
            return True
        self.stats.foreign_source += 1
        if self.stats.foreign_source % LOG_EVERY == 1:
            log.warning(
                "rtp %s: dropped a packet from %s:%d; this stream talks to %s:%d "
                "(%d such packets so far)",
                self.label,
                addr[0],
                addr[1],
                *self.remote,
                self.stats.foreign_source,
            )
        return False

    def _on_audio(self, seq: int, timestamp: int, ssrc: int, payload: bytes) -> None:
        stats = self.stats
        stats.audio += 1
        if ssrc != self._ssrc:
            self._ssrc = ssrc
            self._last_audio_seq = None
        last = self._last_audio_seq
        if last is not None and ((seq - last) & 0xFFFF) >= 0x8000:
            stats.late += 1  # older than one already delivered: the recorder has moved on
            return
        self._last_audio_seq = seq
        if self.on_audio is not None and payload:
            self.on_audio(self._decoder.decode(payload), timestamp)

    def _digit(self, digit: str) -> None:
        self.stats.digits += 1
        if self.on_dtmf is not None:
            self.on_dtmf(digit)

    def _on_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats.rtcp += 1

    def _garbage(self, data: bytes, addr: tuple[str, int], why: str) -> None:
        self.stats.garbage += 1
        if self.stats.garbage % LOG_EVERY == 1:
            log.warning(
                "rtp %s: dropped %d bytes from %s:%d: %s (first bytes %s; %d such packets so far)",
                self.label,
                len(data),
                addr[0],
                addr[1],
                why,
                data[:8].hex(),
                self.stats.garbage,
            )

    def _wrong_payload_type(self, pt: int, addr: tuple[str, int]) -> None:
        stats = self.stats
        stats.wrong_payload_type += 1
        stats.wrong_types.add(pt)
        if stats.wrong_payload_type % LOG_EVERY == 1:
            dtmf = self.params.dtmf_payload_type
            expected = f"{self.params.payload_type} ({self.codec})" + (
                f" or {dtmf} (telephone-event)" if dtmf is not None else ""
            )
            log.warning(
                "rtp %s: dropped a packet with payload type %d from %s:%d: the SDP "
                "negotiated %s (%d such packets so far)",
                self.label,
                pt,
                addr[0],
                addr[1],
                expected,
                stats.wrong_payload_type,
            )
