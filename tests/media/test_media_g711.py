"""G.711 A-law against the standard (CPython's audioop, a C implementation of the ITU
tables): every 16-bit value encodes identically and every code decodes identically."""

from __future__ import annotations

import math
import struct
import warnings

import pytest

from frontdesk.media.g711 import ALawCodec, alaw_from_linear, linear_from_alaw

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")


def test_every_sample_value_encodes_like_the_standard() -> None:
    pcm = struct.pack("<65536h", *range(-32768, 32768))
    assert ALawCodec().encode(pcm) == audioop.lin2alaw(pcm, 2)


def test_every_code_decodes_like_the_standard() -> None:
    codes = bytes(range(256))
    assert ALawCodec().decode(codes) == audioop.alaw2lin(codes, 2)


def test_polarity_is_kept() -> None:
    assert alaw_from_linear(1000) & 0x80 and not alaw_from_linear(-1000) & 0x80
    assert linear_from_alaw(alaw_from_linear(1000)) > 0 > linear_from_alaw(alaw_from_linear(-1000))
    assert alaw_from_linear(0) == 0xD5  # A-law "silence"


def test_a_round_trip_stays_close() -> None:
    pcm = struct.pack("<800h", *(int(12000 * math.sin(i / 6.0)) for i in range(800)))
    back = struct.unpack("<800h", ALawCodec().decode(ALawCodec().encode(pcm)))
    original = struct.unpack("<800h", pcm)
    assert max(abs(a - b) for a, b in zip(original, back, strict=True)) < 400
