"""Message model, Headers, parser strictness and the cache of structured views."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontdesk.sip.errors import LocalProtocolError, SipParseError
from frontdesk.sip.headers import CSeq, Headers, Via, canonical_name, split_list
from frontdesk.sip.message import Request, Response, make_response, parse_message

FIXTURES = Path(__file__).parent / "fixtures"

BASIC = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1\r\n"
    b"From: <sip:alice@example.com>;tag=f1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 7 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def basic(**replace: str) -> bytes:
    data = BASIC
    for old, new in replace.items():
        data = data.replace(old.replace("_", "-").encode(), new.encode())
    return data


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


# --- Headers ------------------------------------------------------------------------------
def test_headers_lookup_by_any_spelling_and_compact_form() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("VIA", "SIP/2.0/UDP b"), ("i", "x"), ("X-Foo", "1")])
    assert list(h) == [("Via", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b"), ("Call-ID", "x"),
                       ("X-Foo", "1")]  # fmt: skip
    assert h.get("via") == "SIP/2.0/UDP a" and h.get("Call-Id") == "x" and h.get("x-foo") == "1"
    assert h.get_all("v") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"] and h.count("Via") == 2
    assert "call-id" in h and "Contact" not in h and 3 not in h
    assert h.get("Contact") is None and h.get_all("Contact") == [] and len(h) == 4
    assert canonical_name("m") == "Contact" and canonical_name("x-odd") == "x-odd"


def test_headers_mutations_keep_order() -> None:
    h = Headers()
    h.add("Via", "a, b")
    h.add("To", "t")
    h.add("Via", "c")
    h.prepend("v", "top")
    assert h.get_all("Via") == ["top", "a, b", "c"]
    assert h.remove_first_value("Via") == "top"
    assert h.remove_first_value("Via") == "a"
    assert h.get_all("Via") == ["b", "c"] and h.values("Via") == ["b", "c"]
    h.set("Via", "only")
    assert list(h) == [("Via", "only"), ("To", "t")]
    h.set("Contact", "<sip:x@y>")
    h.prepend("Route", "<sip:r>")
    assert [n for n, _ in h] == ["Route", "Via", "To", "Contact"]
    h.remove("VIA")
    assert h.get("Via") is None and h.remove_first_value("Via") is None
    copy = h.copy()
    copy.add("X", "1")
    assert "X" not in h and len(copy) == len(h) + 1


def test_split_list_respects_quotes_and_brackets() -> None:
    assert split_list('"a, b" <sip:x>, <sip:y;p="1,2">, z') == [
        '"a, b" <sip:x>', '<sip:y;p="1,2">', "z"
    ]  # fmt: skip
    assert split_list("a , b,,c") == ["a", "b", "", "c"]
    assert Headers([("Allow", "a , b,,c")]).values("Allow") == ["a", "b", "c"]


# --- structured views ---------------------------------------------------------------------
def test_views_are_remembered_but_follow_header_changes() -> None:
    msg = parse_request(BASIC)
    assert msg.cseq == CSeq(7, "OPTIONS") and msg.cseq is msg.cseq  # frozen: shared
    msg.headers.set("CSeq", "8 OPTIONS")
    assert msg.cseq.number == 8
    msg.headers.prepend("Via", "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKtop")
    assert msg.top_via.host == "[2001:db8::1]" and len(msg.vias) == 2
    msg.headers.set("From", '"Al" <sip:al@example.com>;tag=f2')
    assert msg.from_.display_text == "Al" and msg.from_.tag == "f2"
    msg.headers.set("To", "sip:bob@example.com;tag=t9")
    assert msg.to.tag == "t9"


def test_views_are_copies_the_message_never_changes_through_them() -> None:
    msg = parse_request(BASIC)
    via = msg.top_via
    via.params["received"] = "203.0.113.9"
    msg.vias[0].params["rport"] = "1"
    msg.from_.params["tag"] = "changed"
    msg.to.uri.params["x"] = None
    assert msg.top_via.params == {"branch": "z9hG4bKa1"} and msg.vias[0] == msg.top_via
    assert msg.from_.tag == "f1" and msg.to.uri.params == {}


def test_missing_headers_raise_sip_parse_error_from_views() -> None:
    msg = Request("OPTIONS", "sip:a@b")
    for name in ("top_via", "cseq", "from_", "to"):
        with pytest.raises(SipParseError, match="missing"):
            getattr(msg, name)
    assert msg.vias == [] and msg.contacts == [] and msg.call_id == "" and not msg.is_star_contact


def test_star_contact_and_content_type() -> None:
    msg = parse_request(
        basic(Call_ID="Contact: *\r\nContent-Type: Application/SDP; x=1\r\nCall-ID")
    )
    assert msg.is_star_contact and msg.contacts == []
    assert msg.content_type == "application/sdp"


# --- parser strictness --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "words"),
    [
        (basic(**{"CSeq: 7": "CSeq: ²"}), "bad CSeq"),
        (basic(**{"Content-Length: 0": "Content-Length: ٣"}), "bad Content-Length"),
        (basic(**{"Content-Length: 0": "Content-Length: " + "9" * 5000}), "bad Content-Length"),
        (basic(Call_ID="Max-Forwards: ²\r\nCall-ID"), "bad Max-Forwards"),
        (basic(Call_ID="Max-Forwards: " + "9" * 5000 + "\r\nCall-ID"), "bad Max-Forwards"),
        (basic(Call_ID="Expires: 4294967296\r\nCall-ID"), "bad Expires"),
        (basic(Call_ID="Bad Name: x\r\nCall-ID"), "malformed header line"),
        (basic(Call_ID="NoColon\r\nCall-ID"), "malformed header line"),
        (basic(**{"c1\r\n": "c1\rX: y\r\n"}), "bare CR or LF"),
        (basic(**{"c1\r\n": "c1\nX: y\r\n"}), "bare CR or LF"),
        (basic(**{"tag=f1": "tag=f1 junk"}), "bad"),
        (basic(**{">;tag=f1": ">junk;tag=f1"}), "text after '>'"),
        (basic(**{"sip:bob@example.com SIP": "sip:bob@exa\x01mple.com SIP"}), "bad URI"),
        (basic(**{"SIP/2.0\r\n": "HTTP/1.1\r\n"}), "unsupported version"),
        (basic(**{"UDP 192.0.2.1:5060": "UDP 192.0.2.1:70000"}), "port out of range"),
        (basic(**{"branch=z9hG4bKa1": "branch=z9hG4bKa1, , SIP/2.0/UDP h"}), "bad Via"),
        (basic(**{"Via: ": "Via: HTTP/2.0/UDP h\r\nX: "}), "bad Via"),
    ],
)
def test_rejected_with_400_and_the_request_kept(data: bytes, words: str) -> None:
    with pytest.raises(SipParseError, match=words) as info:
        parse_message(data)
    assert info.value.status == 400
    partial = info.value.partial
    assert isinstance(partial, Request)
    if words == "malformed header line":  # the other lines are still there to answer from
        assert make_response(partial, 400).headers.get("CSeq") == "7 OPTIONS"


def test_version_errors() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(basic(**{"SIP/2.0\r\n": "SIP/3.0\r\n"}))
    assert info.value.status == 505
    with pytest.raises(SipParseError) as info:
        parse_message(b"SIP/3.0 200 OK\r\n\r\n")
    assert info.value.partial is None


def test_leading_crlf_is_skipped_and_keepalive_is_not_a_message() -> None:
    assert parse_request(b"\r\n\r\n" + BASIC).method == "OPTIONS"
    with pytest.raises(SipParseError, match="keep-alive"):
        parse_message(b"\r\n\r\n")


def test_bare_lf_messages_are_tolerated() -> None:
    msg = parse_request(BASIC.replace(b"\r\n", b"\n"))
    assert msg.cseq.number == 7 and msg.call_id == "c1"


def test_datagram_body_cut_at_content_length_and_stream_without_it_is_empty() -> None:
    data = basic(**{"Content-Length: 0": "Content-Length: 3"}) + b"abcdef"
    assert parse_request(data).body == b"abc"
    no_cl = BASIC.replace(b"Content-Length: 0\r\n", b"") + b"xyz"
    assert parse_request(no_cl).body == b"xyz"
    assert isinstance(parse_message(no_cl, stream=True), Request)
    assert parse_message(no_cl, stream=True).body == b""
    with pytest.raises(SipParseError, match="no empty line"):
        parse_message(BASIC[:-2], stream=True)


def test_too_large_is_513() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(BASIC + b"x" * 70000)
    assert info.value.status == 513


# --- serializer and responses ---------------------------------------------------------------
def test_serializer_refuses_header_injection() -> None:
    msg = parse_request(BASIC)
    msg.headers.add("Subject", "hi\r\nVia: SIP/2.0/UDP evil")
    with pytest.raises(LocalProtocolError):
        bytes(msg)
    with pytest.raises(LocalProtocolError):
        bytes(Response(200, "OK\r\nX: y"))


def test_serializer_writes_content_length_from_the_body() -> None:
    msg = parse_request(BASIC)
    msg.body = b"hello"
    wire = bytes(msg)
    assert wire.endswith(b"Content-Length: 5\r\n\r\nhello") and wire.count(b"Content-Length") == 1


def test_make_response_copies_the_dialog_headers_and_adds_a_to_tag() -> None:
    req = parse_request(basic(Call_ID="Record-Route: <sip:p1;lr>\r\nCall-ID"))
    ok = make_response(req, 200, to_tag="tt")
    assert (ok.status, ok.reason, ok.to.tag, ok.call_id) == (200, "OK", "tt", "c1")
    assert ok.top_via == req.top_via and ok.headers.get("Record-Route") == "<sip:p1;lr>"
    trying = make_response(req, 100, to_tag="tt")
    assert trying.to.tag is None and "Record-Route" not in trying.headers
    busy = make_response(req, 486)
    assert busy.reason == "Busy Here" and parse_message(bytes(busy)).to.tag is None


def test_via_and_cseq_values() -> None:
    via = Via.parse("SIP / 2.0 / udp  host.example.com : 5062 ; branch = z9hG4bKx ; rport")
    assert (via.transport, via.host, via.port, via.params) == (
        "UDP", "host.example.com", 5062, {"branch": "z9hG4bKx", "rport": None}
    )  # fmt: skip
    assert (
        via.rfc3261_branch and str(via) == "SIP/2.0/UDP host.example.com:5062;branch=z9hG4bKx;rport"
    )
    assert Via.parse(str(via)) == via and via.copy() == via and via.copy() is not via
    assert not Via.parse("SIP/2.0/UDP h;branch=1").rfc3261_branch
    for bad in ("SIP/2.0/UDP", "SIP/2.0 h", "SIP/2.0/UDP h:0", "SIP/2.0/U,D h", "SIP/2.0/UDP h;;"):
        with pytest.raises(SipParseError):
            Via.parse(bad)
    assert CSeq.parse(" 0009 \t INVITE ") == CSeq(9, "INVITE") and str(CSeq(1, "BYE")) == "1 BYE"
    for bad in ("INVITE", "1", "1 IN VITE", "2147483648 INVITE", "-1 BYE", "1 <BYE>"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)
