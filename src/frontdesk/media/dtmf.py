"""RFC 4733 telephone-events (DTMF digits in RTP), in and out, as plain state machines.

`DtmfSender` turns queued digits into one telephone-event payload per 20 ms frame: the
first packet of an event carries the marker bit, the duration grows by one frame per
packet, and the end packet is sent three times (RFC 4733 §2.5.1.4), each 20 ms apart — never
as a burst (aiortp's own DtmfSender writes a whole digit at once, which some receivers
drop). A gap of ordinary audio frames separates digits.

`DtmfReceiver` reports each digit once: when the first end packet of an event arrives,
or — if every end packet was lost — when a new event starts or no packet of it came for
``end_timeout`` seconds.

Payload encoding/decoding is aiortp's `DtmfEvent`. This module never does I/O and never
reads a clock: times come in as ``now``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from aiortp import DtmfEvent

DIGITS = "0123456789*#ABCD"
EVENT_CODES = {digit: code for code, digit in enumerate(DIGITS)}
SAMPLES_PER_FRAME = 160
END_REPEATS = 3


class DtmfError(ValueError):
    """A digit that RFC 4733 cannot carry."""


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One telephone-event payload to send now, at RTP ``timestamp`` (the event's start)."""

    payload: bytes
    timestamp: int
    marker: bool


class DtmfSender:
    """Digits in, one telephone-event packet per tick out (None: send audio this tick)."""

    def __init__(self, duration_ms: int = 100, gap_ms: int = 60, volume: int = 10) -> None:
        self.frames = max(1, duration_ms // 20)
        self.gap_frames = max(1, gap_ms // 20)
        self.volume = volume
        self._queue: deque[str] = deque()
        self._code: int | None = None
        self._start_ts = 0
        self._frame = 0
        self._ends_sent = 0
        self._gap = 0
        self.sent_digits = 0

    @property
    def busy(self) -> bool:
        return bool(self._queue) or self._code is not None or self._gap > 0

    def queue(self, digits: str) -> None:
        for digit in digits:
            if digit.upper() not in EVENT_CODES:
                raise DtmfError(f"{digit!r} is not a DTMF digit (use 0-9, *, #, A-D)")
        self._queue.extend(digits.upper())

    def next_packet(self, timestamp: int) -> EventPacket | None:
        """Called once per 20 ms frame with the audio timestamp of this frame."""
        if self._code is None:
            if self._gap > 0:
                self._gap -= 1
                return None
            if not self._queue:
                return None
            self._code = EVENT_CODES[self._queue.popleft()]
            self._start_ts = timestamp
            self._frame = 0
            self._ends_sent = 0
        if self._frame < self.frames:
            self._frame += 1
            end = self._frame == self.frames
            if end:
                self._ends_sent = 1
            return self._packet(end, marker=self._frame == 1)
        self._ends_sent += 1
        packet = self._packet(True, marker=False)
        if self._ends_sent >= END_REPEATS:
            self._code = None
            self._gap = self.gap_frames
            self.sent_digits += 1
        return packet

    def _packet(self, end: bool, marker: bool) -> EventPacket:
        assert self._code is not None
        duration = self._frame * SAMPLES_PER_FRAME
        payload = DtmfEvent(
            event=self._code, end=end, volume=self.volume, duration=duration
        ).serialize()
        return EventPacket(payload, self._start_ts, marker)


class DtmfReceiver:
    """Telephone-event payloads in, each digit out once."""

    def __init__(self, end_timeout: float = 0.25) -> None:
        self.end_timeout = end_timeout
        self._timestamp: int | None = None
        self._code: int | None = None
        self._reported = True
        self._last_packet = 0.0
        self.malformed = 0

    def packet(self, payload: bytes, timestamp: int, now: float) -> list[str]:
        """Digits completed by this packet (usually none or one)."""
        try:
            event = DtmfEvent.parse(payload)
        except ValueError:
            self.malformed += 1
            return []
        if event.event >= len(DIGITS):
            self.malformed += 1  # a tone or line event (RFC 4734) we do not act on
            return []
        out: list[str] = []
        if timestamp != self._timestamp:
            if not self._reported and self._code is not None:
                out.append(DIGITS[self._code])  # its end packets were all lost
            self._timestamp, self._code, self._reported = timestamp, event.event, False
        self._last_packet = now
        if event.end and not self._reported:
            self._reported = True
            out.append(DIGITS[event.event])
        return out

    def poll(self, now: float) -> list[str]:
        """A digit whose end packets never came, once ``end_timeout`` has passed."""
        if (
            not self._reported
            and self._code is not None
            and now - self._last_packet >= self.end_timeout
        ):
            self._reported = True
            return [DIGITS[self._code]]
        return []
