"""SIP messages: the model, the parser (bytes -> Request/Response) and the serializer.

``parse_message(data)`` takes one datagram or one framed stream message and returns a
`Request` or `Response`, or raises `SipParseError` carrying the status to answer (400, 505)
and, when the request's start line and headers were readable, the partial request so the
caller can answer it. ``bytes(msg)`` serializes with a correct Content-Length.

Header values are kept as received (after unfolding); structured values (Via, From/To, CSeq)
are parsed when asked for and remembered against the exact header string they came from, so
reading ``top_via`` or ``cseq`` again is cheap and a changed header is parsed afresh. The
parser still refuses every message whose Via, From, To, CSeq or Request-URI would not parse,
but it only matches values in the plain form phones send against anchored patterns (see
`frontdesk.sip.uri`) and parses the others in full, with the same errors. Mutable
results (Via, NameAddr) are copies: changing one never changes the message. Text is decoded as
UTF-8 with surrogateescape so that any octet round-trips. This module never does I/O and never
looks at a clock.
"""

from __future__ import annotations

import re

from frontdesk.sip.errors import LocalProtocolError, SipParseError
from frontdesk.sip.headers import MULTI_VALUED as MULTI_VALUED  # re-exported, as before
from frontdesk.sip.headers import (
    SINGLE_VALUED,
    CSeq,
    Headers,
    Via,
    canonical_name,
    check_via_line,
    split_list,
)
from frontdesk.sip.uri import (
    NameAddr,
    SipURI,
    address_tag,
    is_digits,
    is_plain_address,
    is_plain_sip_uri,
    is_token,
)

MAX_MESSAGE_SIZE = 65535
SIP_VERSION = "SIP/2.0"

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_ENC = "utf-8"
_ERRS = "surrogateescape"
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_ANY_LINE_END_RE = re.compile(r"\r\n|\r|\n")
_VERSION_RE = re.compile(r"SIP/[0-9]{1,3}\.[0-9]{1,3}\Z", re.I)
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_ECHOED = frozenset(("via", "from", "call-id", "cseq"))  # copied into responses as they are


class Message:
    """What requests and responses share: headers, body and structured views of both."""

    __slots__ = ("_cseq", "_from", "_to", "_top_via", "_vias", "body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        # parsed views, each with the header string(s) it was parsed from
        self._vias: tuple[list[str], list[Via]] | None = None
        self._top_via: tuple[str, Via] | None = None
        self._cseq: tuple[str, CSeq] | None = None
        self._from: tuple[str, NameAddr] | None = None
        self._to: tuple[str, NameAddr] | None = None

    def forget_views(self) -> None:
        """Drop the remembered parsed views (they are parsed again if asked for). For a
        message kept long with no more use for them, e.g. by a completed transaction: fewer
        live objects for the garbage collector to walk."""
        self._vias = self._top_via = self._cseq = self._from = self._to = None

    # --- structured views (parsed on demand, remembered per header string) --------------
    def _parsed_vias(self) -> list[Via]:
        """The Via values as parsed and remembered (never handed out: callers get copies)."""
        lines = self.headers.get_all("Via")
        cached = self._vias
        if cached is None or not _same_strings(cached[0], lines):
            parsed = [Via.parse(v) for line in lines for v in split_list(line)]
            cached = self._vias = (lines, parsed)
        return cached[1]

    def _parsed_from(self) -> NameAddr:
        value = _required(self.headers, "from")
        cached = self._from
        if cached is None or cached[0] is not value:
            cached = self._from = (value, NameAddr.parse(value))
        return cached[1]

    def _parsed_to(self) -> NameAddr:
        value = _required(self.headers, "to")
        cached = self._to
        if cached is None or cached[0] is not value:
            cached = self._to = (value, NameAddr.parse(value))
        return cached[1]

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first; an empty element (``Via: a, , b``) is an error."""
        return [v.copy() for v in self._parsed_vias()]

    @property
    def top_via(self) -> Via:
        line = self.headers._first("via")
        if line is None:
            raise SipParseError("missing Via")
        cached = self._top_via
        if cached is None or cached[0] is not line:
            vias = self._vias
            if vias is not None and vias[0] and vias[0][0] is line and vias[1]:
                top = vias[1][0]
            else:
                top = Via.parse(split_list(line)[0])
            cached = self._top_via = (line, top)
        return cached[1].copy()

    @property
    def call_id(self) -> str:
        return self.headers._first("call-id") or ""

    @property
    def cseq(self) -> CSeq:
        value = self.headers._first("cseq")
        if value is None:
            raise SipParseError("missing CSeq")
        cached = self._cseq
        if cached is None or cached[0] is not value:
            cached = self._cseq = (value, CSeq.parse(value))
        return cached[1]

    @property
    def from_(self) -> NameAddr:
        return self._parsed_from().copy()

    @property
    def to(self) -> NameAddr:
        return self._parsed_to().copy()

    @property
    def to_user_host(self) -> tuple[str | None, str]:
        """The To URI's user and host, without copying the address (the registrar's and
        the SIP workers' question for every REGISTER)."""
        uri = self._parsed_to().uri
        return uri.user, uri.host

    @property
    def from_tag(self) -> str | None:
        """``from_.tag``, without building or copying the address when it is plain."""
        value = _required(self.headers, "from")
        cached = self._from
        return cached[1].tag if cached is not None and cached[0] is value else address_tag(value)

    @property
    def to_tag(self) -> str | None:
        """``to.tag`` (None outside a dialog), without building or copying the address."""
        value = _required(self.headers, "to")
        cached = self._to
        return cached[1].tag if cached is not None and cached[0] is value else address_tag(value)

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
        lines = [
            f"{name}: {value}" if value else f"{name}:"
            for name, value in self.headers._items
            if name != "Content-Length"
        ]
        lines.insert(0, self.start_line())
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        text = "\r\n".join(lines)
        breaks = len(lines) + 1  # one after each line, and the empty line
        if text.count("\n") != breaks or text.count("\r") != breaks:
            raise LocalProtocolError("a start line or header holds CR or LF: refusing to send")
        return text.encode(_ENC, _ERRS) + self.body


def _same_strings(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _required(headers: Headers, key: str) -> str:
    value = headers._first(key)
    if value is None:
        raise SipParseError(f"missing {canonical_name(key)}")
    return value


class Request(Message):
    """A SIP request. ``uri`` is the Request-URI text; ``ruri`` parses it."""

    __slots__ = ("_ruri", "method", "uri")

    def __init__(
        self, method: str, uri: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self._ruri: tuple[str, SipURI] | None = None

    def _parsed_ruri(self) -> SipURI:
        cached = self._ruri
        if cached is None or cached[0] is not self.uri:
            cached = self._ruri = (self.uri, SipURI.parse(self.uri))
        return cached[1]

    @property
    def ruri(self) -> SipURI:
        """The Request-URI parsed (a copy: changing it does not change ``uri``)."""
        return self._parsed_ruri().copy()

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
    items: list[tuple[str, str]] = []
    keys: list[str] = []
    copy_route = 100 < status < 300
    add_tag = bool(to_tag) and status > 100
    for key, item in zip(request.headers._keys, request.headers._items, strict=True):
        if key in _ECHOED or (copy_route and key == "record-route"):
            items.append(item)
            keys.append(key)
        elif key == "to":
            value = item[1]
            if add_tag and ";tag=" not in value.replace(" ", "").lower():
                item = (item[0], f"{value};tag={to_tag}")
            items.append(item)
            keys.append(key)
    return Response(
        status,
        reason if reason is not None else REASONS.get(status, ""),
        Headers._trusted(items, keys),
        body,
    )


# --- parsing --------------------------------------------------------------------------
def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one SIP message.

    ``stream`` is True for a message framed from TCP (the framer already cut the body to
    Content-Length). For a datagram, octets past Content-Length are ignored (RFC 4475
    §3.1.1.8) and a Content-Length beyond the datagram is an error (§3.1.2.2). CRLFs before
    the start line are skipped (RFC 3261 §7.5). Anything wrong raises `SipParseError`, never
    another exception; for a request whose start line was readable, ``partial`` holds it.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", 513)
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
        if not data:
            raise SipParseError("only CRLF: a keep-alive, not a SIP message")
    head, body = _split_head(data, stream)
    lines, bad_line = _split_lines(head.decode(_ENC, _ERRS))
    headers, bad_header = _parse_header_lines(lines)
    bad_line = bad_line or bad_header
    start = lines[0]
    if start[:4].upper() == "SIP/":
        if bad_line is not None:
            raise SipParseError(bad_line)
        response = _parse_status_line(start, headers)
        response.body = _take_body(headers, body, stream)
        _check_common(response)
        return response
    request = _parse_request_line(start, headers)
    try:
        if bad_line is not None:
            raise SipParseError(bad_line)
        request.body = _take_body(headers, body, stream)
        _check_request(request)
    except SipParseError as e:
        e.partial = request
        raise
    return request


def _split_head(data: bytes, stream: bool) -> tuple[bytes, bytes]:
    """(header section, everything after the empty line)."""
    end = data.find(b"\r\n\r\n")
    if end >= 0 and data.find(b"\n\n", 0, end) < 0:
        return data[:end], data[end + 4 :]
    m = _HEADER_END_RE.search(data)  # tolerate bare LF line ends
    if m is not None:
        return data[: m.start()], data[m.end() :]
    if stream:
        raise SipParseError("no empty line after the headers")
    return data.rstrip(b"\r\n"), b""  # a datagram that ends without the empty line


def _split_lines(head: str) -> tuple[list[str], str | None]:
    """Unfold continuation lines and split. A CR or LF left inside a line is an error, given
    back (not raised) so that the request can still be answered."""
    if "\n " in head or "\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    if "\r\n" in head:
        lines = head.split("\r\n")
        breaks = len(lines) - 1
        if head.count("\n") == breaks and head.count("\r") == breaks:
            return lines, None
    elif "\r" not in head:
        return head.split("\n"), None
    return _ANY_LINE_END_RE.split(head), "bare CR or LF inside a header line"


_RAW_NAMES: dict[str, tuple[str, str]] = {}  # text before ':' -> (canonical name, key)
_RAW_NAMES_MAX = 1024  # bounded: names come from peers


def _header_name(raw: str) -> tuple[str, str] | None:
    """(canonical name, key) for the text before a header's colon; None if not a token."""
    found = _RAW_NAMES.get(raw)
    if found is None:
        name = raw.rstrip(" \t")
        if not is_token(name):
            return None
        canonical = canonical_name(name)
        found = (canonical, canonical.lower())
        if len(_RAW_NAMES) < _RAW_NAMES_MAX:
            _RAW_NAMES[raw] = found
    return found


def _parse_header_lines(lines: list[str]) -> tuple[Headers, str | None]:
    """Headers from every line after the start line, and the first malformed line's error
    (malformed lines are left out so that a 400 can still echo Via, Call-ID and CSeq)."""
    items: list[tuple[str, str]] = []
    keys: list[str] = []
    problem: str | None = None
    known = _RAW_NAMES.get
    for i in range(1, len(lines)):
        raw, colon, value = lines[i].partition(":")
        found = known(raw) if colon else None
        if found is None:
            found = _header_name(raw) if colon else None
            if found is None:
                if problem is None:
                    problem = f"malformed header line {lines[i][:60]!r}"
                continue
        items.append((found[0], value.strip(" \t")))
        keys.append(found[1])
    return Headers._trusted(items, keys), problem


def _parse_request_line(line: str, headers: Headers) -> Request:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            "malformed request line (must be 'METHOD SP Request-URI SP SIP/2.0')",
            partial=Request("UNKNOWN", "", headers),
        )
    method, uri, version = parts
    if not is_token(method):
        raise SipParseError(f"bad method {method[:40]!r}", partial=Request("UNKNOWN", uri, headers))
    partial = Request(method, uri, headers)
    if version.upper() != SIP_VERSION:
        status = 505 if _VERSION_RE.match(version) else 400
        raise SipParseError(f"unsupported version {version[:20]!r}", status, partial)
    return partial


def _parse_status_line(line: str, headers: Headers) -> Response:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != SIP_VERSION or len(code) != 3 or not is_digits(code, 3):
        raise SipParseError(f"malformed status line {line[:60]!r}")
    status = int(code)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} out of range")
    return Response(status, reason, headers)


def _take_body(headers: Headers, body: bytes, stream: bool) -> bytes:
    values = headers._all("content-length")
    if not values:
        return b"" if stream else body
    if len(values) > 1:
        raise SipParseError("more than one Content-Length")
    text = values[0]
    if not is_digits(text, 10):
        raise SipParseError(f"bad Content-Length {text[:20]!r}")
    length = int(text)
    if length > len(body):
        raise SipParseError(f"Content-Length {length} is larger than the message body")
    return body[:length]


def _check_common(msg: Message) -> None:
    """Every Via, From, To and CSeq must parse. Values in the plain form are only matched
    (parsed when a property asks for them); any other value is parsed in full here, so a
    message is accepted or refused, with the same reason, exactly as by parsing them all."""
    headers = msg.headers
    problem = headers._first_problem(_REQUIRED, SINGLE_VALUED)
    if problem is not None:
        raise SipParseError(problem)
    for line in headers._all("via"):
        check_via_line(line)
    if not is_plain_address(headers._first("from") or ""):
        msg._parsed_from()
    if not is_plain_address(headers._first("to") or ""):
        msg._parsed_to()
    msg.cseq  # noqa: B018


def _check_request(request: Request) -> None:
    _check_common(request)
    if request.cseq.method != request.method:
        raise SipParseError("CSeq method does not match the request method")
    mf = request.headers._first("max-forwards")
    if mf is not None and (not is_digits(mf, 10) or int(mf) > 255):
        raise SipParseError(f"bad Max-Forwards {mf[:20]!r}")
    expires = request.headers._first("expires")
    if expires is not None and (not is_digits(expires, 10) or int(expires) > 2**32 - 1):
        raise SipParseError(f"bad Expires {expires[:20]!r}")
    uri = request.uri
    if is_plain_sip_uri(uri):  # parses, and has no headers
        return
    if not _URI_SCHEME_RE.match(uri):
        raise SipParseError(f"bad Request-URI {uri[:60]!r}")
    if request._parsed_ruri().headers is not None and uri[:4].lower() in ("sip:", "sips"):
        raise SipParseError("Request-URI must not contain headers")
