"""G.711 A-law (PCMA), written from ITU-T G.711 because aiortp's is wrong.

aiortp 0.8's `PcmaCodec` sets the A-law sign bit the wrong way round, so every sample it
encodes or decodes has its polarity flipped: it talks to itself fine, but a real phone
hears (and Frontdesk records) the inverted waveform — measured against baresip (a greeting
correlated 0.27 instead of 0.99) and against the standard tables. µ-law (PCMU) in aiortp
is correct and stays in use.

`ALawCodec` has aiortp's `Codec` interface: 16-bit little-endian PCM in and out, one byte
per sample on the wire, through lookup tables built once at import (encode: one table entry
per 16-bit sample value; decode: two ``bytes.translate`` passes). Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import sys
from operator import itemgetter

from aiortp.codecs import Codec

_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def alaw_from_linear(sample: int) -> int:
    """One signed 16-bit sample -> one A-law byte (ITU-T G.711, even bits inverted)."""
    value = sample >> 3  # A-law works on 13 bits
    if value >= 0:
        mask = 0xD5  # sign bit set for positive values, then the 0x55 inversion
    else:
        mask = 0x55
        value = -value - 1
    segment = next((i for i, end in enumerate(_SEGMENT_ENDS) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    code = segment << 4
    code |= (value >> 1 if segment < 2 else value >> segment) & 0x0F
    return code ^ mask


def linear_from_alaw(code: int) -> int:
    """One A-law byte -> the signed 16-bit sample at the middle of its interval."""
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


@functools.cache
def _encode_table() -> bytes:
    """linear sample (native 16-bit) -> A-law code; built on first use (~0.15 s, which every
    CLI command would otherwise pay at import)."""
    swap = sys.byteorder == "big"
    table = bytearray(65536)
    for raw in range(65536):
        value = ((raw & 0xFF) << 8) | (raw >> 8) if swap else raw
        table[raw] = alaw_from_linear(value - 65536 if value >= 0x8000 else value)
    return bytes(table)


def _decode_tables() -> tuple[bytes, bytes]:
    low = bytearray(256)
    high = bytearray(256)
    for code in range(256):
        low[code], high[code] = linear_from_alaw(code).to_bytes(2, "little", signed=True)
    return bytes(low), bytes(high)


_DECODE_LOW, _DECODE_HIGH = _decode_tables()


class ALawCodec(Codec):
    """PCMA, payload type 8, 8 kHz, 20 ms frames."""

    @property
    def name(self) -> str:
        return "PCMA"

    @property
    def sample_rate(self) -> int:
        return 8000

    @property
    def samples_per_frame(self) -> int:
        return 160

    def encode(self, pcm: bytes) -> bytes:
        samples = memoryview(pcm)[: len(pcm) // 2 * 2].cast("H")
        table = _encode_table()
        if len(samples) < 2:
            return bytes(table[s] for s in samples)
        return bytes(itemgetter(*samples)(table))

    def decode(self, payload: bytes) -> bytes:
        out = bytearray(2 * len(payload))
        out[0::2] = payload.translate(_DECODE_LOW)
        out[1::2] = payload.translate(_DECODE_HIGH)
        return bytes(out)
