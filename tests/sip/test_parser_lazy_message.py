"""Whole messages: lazy validation accepts and refuses exactly what eager parsing did, and the
faster serializer and `make_response` write what the previous ones wrote.

The reference is `parse_message` with the checks it had before (copied below) and the
general value parsers: each Via, From, To and Request-URI parsed in full. Errors must match in reason and status; accepted messages must give equal views.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from typing import Any
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parser_lazy import ADDRESS, CSEQ, URI, VIA, either

from frontdesk.sip import message
from frontdesk.sip.errors import LocalProtocolError, SipParseError
from frontdesk.sip.headers import SINGLE_VALUED, Headers, Via, split_list
from frontdesk.sip.message import (
    REASONS,
    Message,
    Request,
    Response,
    make_response,
    parse_message,
)
from frontdesk.sip.uri import NameAddr, SipURI, is_digits

PLAIN_VIA = "SIP/2.0/UDP 127.0.0.1:5261;branch=z9hG4bK-1-0"
PLAIN_FROM = "sipp <sip:sipp@127.0.0.1:5261>;tag=1T"
PLAIN_TO = "<sip:bench@127.0.0.1:5080>"


def old_check_common(msg: Message) -> None:
    """`_check_common` as it was before the lazy checks: every value parsed in full."""
    problem = msg.headers._first_problem(("via", "from", "to", "call-id", "cseq"), SINGLE_VALUED)
    if problem is not None:
        raise SipParseError(problem)
    for line in msg.headers.get_all("Via"):
        for value in split_list(line):
            Via._parse_general(value)
    NameAddr._parse_general(msg.headers.get("From") or "")
    NameAddr._parse_general(msg.headers.get("To") or "")
    msg.cseq  # noqa: B018


def old_check_request(request: Request) -> None:
    """`_check_request` as it was before the lazy checks."""
    old_check_common(request)
    if request.cseq.method != request.method:
        raise SipParseError("CSeq method does not match the request method")
    mf = request.headers.get("Max-Forwards")
    if mf is not None and (not is_digits(mf, 10) or int(mf) > 255):
        raise SipParseError(f"bad Max-Forwards {mf[:20]!r}")
    expires = request.headers.get("Expires")
    if expires is not None and (not is_digits(expires, 10) or int(expires) > 2**32 - 1):
        raise SipParseError(f"bad Expires {expires[:20]!r}")
    uri = request.uri
    if not re.match(r"[A-Za-z][A-Za-z0-9+\-.]*:", uri):
        raise SipParseError(f"bad Request-URI {uri[:60]!r}")
    if SipURI._parse_general(uri).headers is not None and uri[:4].lower() in ("sip:", "sips"):
        raise SipParseError("Request-URI must not contain headers")


def eager_parse(data: bytes) -> Request | Response:
    """`parse_message` as it was: every structured value parsed in full while checking."""
    with ExitStack() as stack:
        stack.enter_context(patch.object(message, "_check_common", old_check_common))
        stack.enter_context(patch.object(message, "_check_request", old_check_request))
        for cls in (NameAddr, SipURI, Via):
            stack.enter_context(patch.object(cls, "parse", cls._parse_general))
        return parse_message(data)


def view(parse: Any, data: bytes) -> tuple[Any, ...]:
    """Everything a caller can read from the parse of ``data`` (or the error)."""
    try:
        msg = parse(data)
    except SipParseError as e:
        return ("error", e.reason, e.status, e.partial is not None)
    out: list[Any] = [msg.start_line(), list(msg.headers), msg.body]
    names = ["vias", "top_via", "from_", "to", "cseq", "contacts"]
    for name in [*names, "ruri"] if isinstance(msg, Request) else names:
        try:
            out.append(getattr(msg, name))
        except SipParseError as e:
            out.append(("error", e.reason))
    return tuple(out)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["INVITE", "REGISTER", "BYE", "ACK"]))

    def plain_or(plain: str, parts: dict[str, list[str]]) -> str:
        """Mostly the plain value, so that many messages get past the first check."""
        return plain if draw(st.sampled_from([1, 1, 1, 0])) else draw(either(parts))

    if draw(st.booleans()):
        start = "SIP/2.0 200 OK"
    else:
        uri = plain_or("sip:bench@127.0.0.1:5080", URI)
        start = f"{method} {uri} SIP/2.0"

    vias = [plain_or(PLAIN_VIA, VIA) for _ in range(draw(st.integers(1, 3)))]
    lines = [start]
    if draw(st.booleans()):
        lines.append("Via: " + ", ".join(vias))
    else:
        lines += [f"Via: {v}" for v in vias]
    lines.append("From: " + plain_or(PLAIN_FROM, ADDRESS))
    lines.append("To: " + plain_or(PLAIN_TO, ADDRESS))
    lines.append("Call-ID: c1@h")
    lines.append("CSeq: " + plain_or(f"1 {method}", CSEQ))
    lines.append("Contact: " + plain_or(PLAIN_TO, ADDRESS))
    lines.append("Content-Length: 0")
    text = "\r\n".join(lines) + "\r\n\r\n"
    return text.replace("\r\n ", "\r\n").encode("utf-8", "surrogateescape")  # no folding


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_lazy_checks_accept_and_refuse_exactly_what_eager_parsing_did(data: bytes) -> None:
    assert view(parse_message, data) == view(eager_parse, data)


@settings(max_examples=300, deadline=None)
@given(messages())
def test_tag_accessors_equal_the_address_views(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    assert msg.from_tag == msg.from_.tag and msg.to_tag == msg.to.tag  # not parsed, then parsed
    assert msg.from_tag == msg.from_.tag and msg.to_tag == msg.to.tag


def test_tag_accessors_follow_header_changes() -> None:
    msg = parse_message(
        f"BYE sip:a@b SIP/2.0\r\nVia: {PLAIN_VIA}\r\nFrom: {PLAIN_FROM}\r\nTo: {PLAIN_TO}\r\n"
        "Call-ID: c\r\nCSeq: 2 BYE\r\n\r\n".encode()
    )
    assert (msg.from_tag, msg.to_tag) == ("1T", None)
    msg.headers.set("To", PLAIN_TO + ";tag=x9")
    assert msg.to_tag == "x9"


# --- serializer and make_response against the previous code ---------------------------------
def old_bytes(msg: Request | Response) -> bytes:
    lines = [msg.start_line()]
    for name, value in msg.headers:
        if name != "Content-Length":
            lines.append(f"{name}: {value}" if value else f"{name}:")
    lines.append(f"Content-Length: {len(msg.body)}")
    lines.append("\r\n")
    text = "\r\n".join(lines)
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise LocalProtocolError("a start line or header holds CR or LF: refusing to send")
    return text.encode("utf-8", "surrogateescape") + msg.body


def old_make_response(request: Request, status: int, to_tag: str | None) -> Response:
    headers = Headers()
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            headers.add(name, value)
        elif name == "To":
            if to_tag and status > 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
        elif name == "Record-Route" and 100 < status < 300:
            headers.add(name, value)
    return Response(status, REASONS.get(status, ""), headers)


HEADER_NAMES = [
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "CSeq",
    "Record-Route",
    "Route",
    "Contact",
    "Content-Length",
    "X-Custom",
    "Supported",
]
VALUES = ["a", "", "<sip:p;lr>", "<sip:b@h>;tag=1", "<sip:b@h> ; TAG = 2", "x\r\ny", "ü", "1 BYE"]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.sampled_from(VALUES)), max_size=10),
    st.sampled_from([100, 180, 200, 299, 300, 486]),
    st.sampled_from([None, "", "tt"]),
    st.sampled_from([b"", b"v=0\r\n"]),
    st.sampled_from(["sip:a@b", "sip:a\r\n@b"]),
)
def test_serializer_and_make_response_write_what_they_wrote_before(
    headers: list[tuple[str, str]], status: int, to_tag: str | None, body: bytes, uri: str
) -> None:
    request = Request("INVITE", uri, Headers(headers), body)

    def written(msg: Request | Response) -> bytes | str:
        try:
            return bytes(msg)
        except LocalProtocolError:
            return "refused"

    assert written(request) == ("refused" if _refuses(old_bytes, request) else old_bytes(request))
    new, old = (
        make_response(request, status, to_tag=to_tag),
        old_make_response(request, status, to_tag),
    )
    assert (new.status, new.reason, list(new.headers)) == (
        old.status,
        old.reason,
        list(old.headers),
    )
    assert new.headers._keys == old.headers._keys


def _refuses(write: Any, msg: Request | Response) -> bool:
    try:
        write(msg)
    except LocalProtocolError:
        return True
    return False
