"""SIP messages: the model, the parser (bytes -> Request/Response) and the serializer.

``parse_message(data)`` takes one datagram or one framed stream message and returns a
`Request` or `Response`, or raises `SipParseError` carrying the status to answer (400, 505)
and, when the request's start line and headers were readable, the partial request so the
caller can answer it. ``bytes(msg)`` serializes with a correct Content-Length.

Header values are kept as received (after unfolding); structured values (Via, From/To, CSeq)
are parsed when asked for. Text is decoded as UTF-8 with surrogateescape so that any octet
round-trips. This module never does I/O and never looks at a clock.
"""

from __future__ import annotations

import re

from frontdesk.sip.errors import SipParseError
from frontdesk.sip.headers import (
    MULTI_VALUED,
    SINGLE_VALUED,
    CSeq,
    Headers,
    Via,
    canonical_name,
    split_list,
)
from frontdesk.sip.uri import NameAddr, SipURI, is_token

MAX_MESSAGE_SIZE = 65535
SIP_VERSION = "SIP/2.0"

REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 301: "Moved Permanently",
    302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_ENC = "utf-8"
_ERRS = "surrogateescape"
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")


class Message:
    """What requests and responses share: headers, body and structured views of both."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body

    # --- structured views (parsed on demand) -------------------------------------------
    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        line = self.headers.get("Via")
        if line is None:
            raise SipParseError("missing Via")
        return Via.parse(split_list(line)[0])

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("CSeq")
        if value is None:
            raise SipParseError("missing CSeq")
        return CSeq.parse(value)

    @property
    def from_(self) -> NameAddr:
        return _name_addr(self.headers, "From")

    @property
    def to(self) -> NameAddr:
        return _name_addr(self.headers, "To")

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; a ``*`` contact is returned as an empty list by `is_star_contact`."""
        return [NameAddr.parse(v) for v in self.headers.values("Contact") if v != "*"]

    @property
    def is_star_contact(self) -> bool:
        return self.headers.values("Contact") == ["*"]

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    # --- serialization ------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self.start_line()]
        for name, value in self.headers:
            if name == "Content-Length":
                continue
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode(_ENC, _ERRS) + self.body


def _name_addr(headers: Headers, name: str) -> NameAddr:
    value = headers.get(name)
    if value is None:
        raise SipParseError(f"missing {name}")
    return NameAddr.parse(value)


class Request(Message):
    """A SIP request. ``uri`` is the Request-URI text; ``ruri`` parses it."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    @property
    def ruri(self) -> SipURI:
        return SipURI.parse(self.uri)

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self, status: int, reason: str = "", headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6: Via, From, To (+tag), Call-ID, CSeq."""
    headers = Headers()
    src = request.headers
    for name, value in src:
        lname = name.lower()
        if lname in ("via", "from", "call-id", "cseq"):
            headers.add(name, value)
        elif lname == "to":
            if to_tag and status > 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
        elif lname == "record-route" and 100 < status < 300:
            headers.add(name, value)
    return Response(status, reason if reason is not None else REASONS.get(status, ""), headers, body)


# --- parsing --------------------------------------------------------------------------
def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one SIP message.

    ``stream`` is True for a message framed from TCP (the framer already cut the body to
    Content-Length). For a datagram, octets past Content-Length are ignored (RFC 4475
    §3.1.1.8) and a Content-Length beyond the datagram is an error (§3.1.2.2).
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", 513)
    m = _HEADER_END_RE.search(data)
    if m is not None:
        head = data[: m.start()].decode(_ENC, _ERRS)
        body = data[m.end() :]
    elif stream:
        raise SipParseError("no empty line after the headers")
    else:  # a datagram that ends without the empty line: headers only
        head = data.rstrip(b"\r\n").decode(_ENC, _ERRS)
        body = b""
    if "\n " in head or "\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    lines = head.split("\r\n") if "\r\n" in head else head.split("\n")
    start = lines[0]
    headers = _parse_header_lines(lines[1:])
    if start.startswith("SIP/"):
        response = _parse_status_line(start, headers)
        response.body = _take_body(headers, body, stream)
        _check_response(response)
        return response
    request = _parse_request_line(start, headers)
    try:
        request.body = _take_body(headers, body, stream)
        _check_request(request)
    except SipParseError as e:
        e.partial = request
        raise
    return request


def _parse_header_lines(lines: list[str]) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise SipParseError(f"malformed header line {line[:60]!r}")
        items.append((canonical_name(name), value.strip(" \t")))
    return Headers(items)


def _parse_request_line(line: str, headers: Headers) -> Request:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            "malformed request line (must be 'METHOD SP Request-URI SP SIP/2.0')",
            partial=Request("UNKNOWN", "", headers),
        )
    method, uri, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method!r}")
    partial = Request(method, uri, headers)
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported version {version!r}", 505, partial)
    if uri.startswith("<") or "\t" in uri:
        raise SipParseError("bad Request-URI", partial=partial)
    return partial


def _parse_status_line(line: str, headers: Headers) -> Response:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != SIP_VERSION or len(code) != 3 or not code.isdigit():
        raise SipParseError(f"malformed status line {line[:60]!r}")
    status = int(code)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} out of range")
    return Response(status, reason, headers)


def _take_body(headers: Headers, body: bytes, stream: bool) -> bytes:
    values = headers.get_all("Content-Length")
    if not values:
        return b"" if stream else body
    if len(values) > 1:
        raise SipParseError("more than one Content-Length")
    text = values[0]
    if not text.isdigit():
        raise SipParseError(f"bad Content-Length {text!r}")
    length = int(text)
    if length > len(body):
        raise SipParseError(f"Content-Length {length} is larger than the message body")
    return body[:length]


def _check_common(msg: Message) -> None:
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if msg.headers.get(name) is None:
            raise SipParseError(f"missing required header {name}")
    for name, _ in msg.headers:
        lname = name.lower()
        if lname in SINGLE_VALUED and msg.headers.count(name) > 1:
            raise SipParseError(f"more than one {name} header")
        if lname in MULTI_VALUED and lname == "via":
            continue
    msg.vias  # noqa: B018 - every Via must parse
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    msg.cseq  # noqa: B018


def _check_request(request: Request) -> None:
    _check_common(request)
    if request.cseq.method != request.method:
        raise SipParseError("CSeq method does not match the request method")
    mf = request.headers.get("Max-Forwards")
    if mf is not None and (not mf.isdigit() or int(mf) > 255):
        raise SipParseError(f"bad Max-Forwards {mf!r}")
    expires = request.headers.get("Expires")
    if expires is not None and (not expires.isdigit() or len(expires) > 10):
        raise SipParseError(f"bad Expires {expires!r}")
    scheme, colon, _ = request.uri.partition(":")
    if not colon or not scheme:
        raise SipParseError("bad Request-URI")
    if scheme.lower() in ("sip", "sips"):
        uri = request.ruri
        if uri.headers is not None:
            raise SipParseError("Request-URI must not contain headers")


def _check_response(response: Response) -> None:
    _check_common(response)
