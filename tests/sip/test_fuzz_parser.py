"""Fuzz targets for the parser and the framer (STYLE.md #6: a fuzz target next to every parser).

Properties:
- `parse_message` on any octets raises nothing but `SipParseError`;
- on a message that parsed, every structured view raises nothing but `SipParseError`, and
  serializing it and parsing again gives the same start line, headers and body;
- `StreamFramer.feed` raises nothing but `FramingError`, and never returns more octets than
  it was given.

Inputs: arbitrary bytes, and valid messages (RFC 4475 and the phones' fixtures) mutated by
splicing in the octets parsers trip on. FUZZ_EXAMPLES raises the example count for a long
local run (e.g. FUZZ_EXAMPLES=20000).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontdesk.sip.errors import SipParseError
from frontdesk.sip.framing import FramingError, StreamFramer
from frontdesk.sip.message import Message, Request, Response, make_response, parse_message
from frontdesk.sip.uri import NameAddr, SipURI

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FIXTURES = Path(__file__).parent / "fixtures"


def _seeds() -> list[bytes]:
    seeds = [p.read_bytes() for p in sorted(FIXTURES.glob("*.txt"))]
    env = os.environ.get("FRONTDESK_SHARED")
    roots = ([Path(env)] if env else []) + [
        parent / ".." / "shared" for parent in Path(__file__).resolve().parents
    ]
    for root in roots:
        folder = root / "conformance" / "rfc4475"
        if folder.is_dir():
            seeds += [p.read_bytes() for p in sorted(folder.glob("*.dat"))]
            break
    assert len(seeds) > 50, "seeds missing: tests/sip/fixtures or shared/conformance/rfc4475"
    return seeds


SEEDS = _seeds()
# octets that parsers trip on: separators, quotes, brackets, line ends, escapes, big and
# non-ASCII digits, invalid UTF-8, NUL
TRICKY = [
    b":", b";", b",", b'"', b"\\", b"<", b">", b"[", b"]", b"@", b"?", b"=", b"/", b" ", b"\t",
    b"\r", b"\n", b"\r\n", b"\r\n ", b"\r\n\r\n", b"%", b"%00", b"0", b"-1", b"99999999999",
    b"9" * 5000, "²".encode(), "٣".encode(), b"\xff", b"\xc3", b"\x00", b"SIP/2.0", b"sip:",
    b"[::1]", b":65536", b"Via: SIP/2.0/UDP h\r\n", b"l: 3\r\n", b"Contact: *\r\n", b"*",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data)))
        if op == 0:  # insert a tricky token
            data[pos:pos] = draw(st.sampled_from(TRICKY))
        elif op == 1:  # delete a run
            del data[pos : pos + draw(st.integers(1, 12))]
        elif op == 2 and data:  # flip one octet
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        else:  # duplicate a run (repeats header lines, parameters...)
            run = data[pos : pos + draw(st.integers(1, 60))]
            data[pos:pos] = run
    return bytes(data)


ANY_INPUT = st.one_of(st.binary(max_size=2000), mutated())


def read_every_view(msg: Message) -> None:
    """Each view either works or raises SipParseError (anything else fails the test)."""
    views = ["vias", "top_via", "call_id", "cseq", "from_", "to", "contacts"]
    views += ["is_star_contact", "content_type"]
    if isinstance(msg, Request):
        views.append("ruri")
    for view in views:
        with contextlib.suppress(SipParseError):
            getattr(msg, view)


def same_message(a: Request | Response, b: Request | Response) -> None:
    assert a.start_line() == b.start_line()
    assert [h for h in a.headers if h[0] != "Content-Length"] == [
        h for h in b.headers if h[0] != "Content-Length"
    ]
    assert a.body == b.body


@FUZZ
@given(ANY_INPUT)
def test_parse_message_raises_only_sip_parse_error(data: bytes) -> None:
    for stream in (False, True):
        try:
            msg = parse_message(data, stream=stream)
        except SipParseError as e:
            assert 400 <= e.status < 600
            if e.partial is not None:
                assert isinstance(e.partial, Request)
                read_every_view(e.partial)
                make_response(e.partial, e.status)
            continue
        read_every_view(msg)
        again = parse_message(bytes(msg), stream=True)  # our own output always parses
        same_message(msg, again)
        if isinstance(msg, Request):
            make_response(msg, 200, to_tag="t")


@FUZZ
@given(st.text(max_size=300))
def test_uri_and_address_raise_only_sip_parse_error(text: str) -> None:
    for parse in (SipURI.parse, NameAddr.parse):
        try:
            value = parse(text)
        except SipParseError:
            continue
        str(value)


@FUZZ
@given(ANY_INPUT, st.lists(st.integers(1, 300), max_size=8))
def test_framer_raises_only_framing_error(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(max_message=4096)
    out: list[bytes] = []
    pos = 0
    try:
        for size in [*cuts, len(data)]:
            out += framer.feed(data[pos : pos + size])
            pos += size
    except FramingError:
        return
    assert sum(map(len, out)) + framer.buffered <= len(data)
    for item in out:
        assert item == b"\r\n\r\n" or b"\r\n\r\n" in item


@FUZZ
@given(mutated())
def test_framer_whole_equals_byte_by_byte(data: bytes) -> None:
    def run(chunks: list[bytes]) -> list[bytes] | str:
        framer = StreamFramer()
        out: list[bytes] = []
        try:
            for chunk in chunks:
                out += framer.feed(chunk)
        except FramingError as e:
            return f"error: {e}"
        return out

    whole = run([data])
    bytewise = run([data[i : i + 1] for i in range(len(data))])
    if isinstance(whole, list) and isinstance(bytewise, list):
        assert whole == bytewise
    else:  # both fail, or byte-by-byte fails where whole waits (never the other way)
        assert isinstance(bytewise, str) or isinstance(whole, str)
