"""StreamFramer: whole, byte by byte, back to back, keep-alives, and every way to fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from frontdesk.sip.framing import PING, FramingError, StreamFramer, is_keepalive
from frontdesk.sip.message import Request, parse_message

FIXTURES = Path(__file__).parent / "fixtures"

# RFC 4475 messages that are well framed (a Content-Length that matches the body, or none and
# no body); the others are framing errors or only make sense as datagrams (dblreq, inv2543)
FRAMED_OK = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "semiuri",
    "transports", "mpart01", "unreason", "noreason", "badbranch", "unkscm", "novelsc",
    "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf", "cparam01", "cparam02",
    "regescrt", "sdp01", "regbadct", "baddate", "mismatch01", "escruri",
]  # fmt: skip


def rfc4475(name: str) -> bytes:
    here = Path(__file__).resolve()
    env = os.environ.get("FRONTDESK_SHARED")
    roots = ([Path(env)] if env else []) + [p / ".." / "shared" for p in here.parents]
    for root in roots:
        path = root / "conformance" / "rfc4475" / f"{name}.dat"
        if path.is_file():
            return path.read_bytes()
    pytest.fail(f"RFC 4475 file {name}.dat not found beside the repository (shared/)")


def feed_bytewise(framer: StreamFramer, data: bytes) -> list[bytes]:
    out: list[bytes] = []
    for i in range(len(data)):
        out += framer.feed(data[i : i + 1])
    return out


@pytest.mark.parametrize("name", FRAMED_OK)
def test_rfc4475_message_whole_and_byte_by_byte(name: str) -> None:
    data = rfc4475(name)
    whole = StreamFramer().feed(data)
    assert whole == [data]
    assert feed_bytewise(StreamFramer(), data) == [data]


@pytest.mark.parametrize("name", ["register_baresip.txt", "invite_linphone.txt"])
def test_fixture_whole_and_byte_by_byte(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    if b"Content-Length" not in data:
        data = bytes(parse_message(data))
    assert StreamFramer().feed(data) == [data]
    assert feed_bytewise(StreamFramer(), data) == [data]


def test_back_to_back_in_one_feed_with_keepalives_between() -> None:
    msgs = [rfc4475(n) for n in ("wsinv", "mpart01", "esc01", "noreason", "lwsdisp")]
    stream = b"\r\n".join(msgs[:2]) + PING + msgs[2] + b"".join(msgs[3:])
    framer = StreamFramer()
    assert framer.feed(stream) == [msgs[0], msgs[1], PING, *msgs[2:]]
    assert framer.buffered == 0
    assert feed_bytewise(StreamFramer(), stream) == [msgs[0], msgs[1], PING, *msgs[2:]]


def test_split_at_every_position() -> None:
    stream = rfc4475("wsinv") + rfc4475("intmeth")
    for cut in range(1, len(stream)):
        framer = StreamFramer()
        out = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert out == [rfc4475("wsinv"), rfc4475("intmeth")], cut


def test_ping_is_reported_and_a_single_crlf_is_skipped() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []  # could still become a ping
    assert framer.feed(b"\r\n") == [PING]
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [PING, PING]
    msg = rfc4475("lwsdisp")
    assert framer.feed(b"\r\n" + msg) == [msg]  # a lone CRLF before a message: skipped
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n\r\n") == [PING]


def test_compact_and_folded_content_length() -> None:
    body = b"v=0\r\n"
    head = b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
    for cl in (b"l: 5", b"L:5", b"Content-Length   : 5", b"content-length:\r\n 5"):
        data = head + cl + b"\r\n\r\n" + body
        assert StreamFramer().feed(data + b"\r\n") == [data]


def test_absent_content_length_means_no_body() -> None:
    msg = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n"
    assert StreamFramer().feed(msg + msg) == [msg, msg]


@pytest.mark.parametrize(
    ("value", "words"),
    [(b"-999", "bad Content-Length"), (b"abc", "bad Content-Length"), (b"", "bad Content")],
)
def test_bad_content_length_closes(value: bytes, words: str) -> None:
    data = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: " + value + b"\r\n\r\n"
    with pytest.raises(FramingError, match=words):
        StreamFramer().feed(data)


def test_rfc4475_framing_errors() -> None:
    for name, words in (("ncl", "bad Content-Length"), ("mcl01", "more than one")):
        with pytest.raises(FramingError, match=words):
            StreamFramer().feed(rfc4475(name))
    framer = StreamFramer()  # clerr: 9999 octets announced; the framer waits for them
    assert framer.feed(rfc4475("clerr")) == []
    assert framer.buffered == len(rfc4475("clerr"))


def test_oversized_header_section_and_body() -> None:
    framer = StreamFramer(max_message=1000)
    with pytest.raises(FramingError, match="header section longer"):
        framer.feed(b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * 1000)
    with pytest.raises(FramingError, match="close the connection"):
        framer.feed(b"\r\n\r\n")  # a failed framer stays failed
    big = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2000\r\n\r\n"
    with pytest.raises(FramingError, match="over the 1000 limit"):
        StreamFramer(max_message=1000).feed(big)
    bytewise = StreamFramer(max_message=1000)
    with pytest.raises(FramingError):
        feed_bytewise(bytewise, b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 200)


def test_framed_messages_parse_as_stream() -> None:
    data = (FIXTURES / "invite_baresip.txt").read_bytes()
    (framed,) = StreamFramer().feed(data)
    msg = parse_message(framed, stream=True)
    assert isinstance(msg, Request) and msg.method == "INVITE" and len(msg.body) == 339


def test_is_keepalive() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n")
    assert not is_keepalive(b"") and not is_keepalive(b"\r\nOPTIONS")


ALL_RFC4475 = [
    *FRAMED_OK, "dblreq", "inv2543", "badinv01", "clerr", "ncl", "scalar02", "scalarlg",
    "quotbal", "ltgtruri", "lwsruri", "lwsstart", "trws", "baddn", "badaspec", "badvers",
    "mismatch02", "bigcode", "insuf", "multi01", "mcl01",
]  # fmt: skip


def frame(chunks: list[bytes]) -> tuple[list[bytes], str | None, int]:
    framer = StreamFramer()
    out: list[bytes] = []
    try:
        for chunk in chunks:
            out += framer.feed(chunk)
    except FramingError as e:
        return out, str(e), framer.buffered
    return out, None, framer.buffered


@pytest.mark.parametrize("name", ALL_RFC4475)
def test_every_rfc4475_file_frames_the_same_whole_and_byte_by_byte(name: str) -> None:
    data = rfc4475(name)
    whole = frame([data])
    bytewise = frame([data[i : i + 1] for i in range(len(data))])
    assert whole[:2] == bytewise[:2]
    if name in FRAMED_OK:
        assert whole == ([data], None, 0)


def test_the_file_list_is_complete() -> None:
    assert len(set(ALL_RFC4475)) == 49
