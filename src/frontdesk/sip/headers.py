"""Header fields: names (compact forms, canonical case), the ordered header list, and the
structured values the core reads (Via, CSeq).

Values are stored as received (unfolded); structured views are parsed on demand. This module
never does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from frontdesk.sip.errors import SipParseError
from frontdesk.sip.uri import format_params, is_token, parse_params

COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By",
    "x": "Session-Expires", "a": "Accept-Contact", "j": "Reject-Contact",
    "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info",
}

_KNOWN = (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Length",
    "Content-Type", "Expires", "Route", "Record-Route", "Allow", "Supported", "Require",
    "Proxy-Require", "Unsupported", "User-Agent", "Server", "Authorization",
    "WWW-Authenticate", "Proxy-Authorization", "Proxy-Authenticate", "Accept",
    "Accept-Encoding", "Accept-Language", "Event", "Subscription-State", "Allow-Events",
    "Date", "Timestamp", "Min-Expires", "Retry-After", "Reason", "Warning", "Subject",
    "Content-Encoding", "Content-Disposition", "Refer-To", "Referred-By", "Session-Expires",
    "Min-SE", "P-Asserted-Identity", "Privacy", "Path", "RSeq", "RAck", "Organization",
    "Priority", "In-Reply-To", "Reply-To", "Call-Info", "Alert-Info", "Error-Info",
    "Authentication-Info", "MIME-Version", "Diversion", "Replaces",
)
CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN}
for _c, _full in COMPACT_FORMS.items():
    CANONICAL[_c] = _full

# Headers whose value may be a comma-separated list (RFC 3261 §7.3.1).
MULTI_VALUED = frozenset(
    n.lower() for n in (
        "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require",
        "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
        "Allow-Events", "Path", "Warning", "Diversion", "Reason", "Call-Info",
        "Alert-Info", "Error-Info", "In-Reply-To",
    )
)
# Headers that must appear at most once (RFC 4475 §3.3.8 multi01, §3.3.9 mcl01).
SINGLE_VALUED = frozenset(
    ("from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type",
     "expires")
)


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded)."""
    return CANONICAL.get(name.lower(), name)


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and ``<...>``."""
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    depth = 0
    in_quote = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return parts


class Headers:
    """Ordered, case-insensitive header list that preserves what was received.

    Each entry is ``(canonical name, value)``. Lookup is by any spelling or compact form.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = items if items is not None else []

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def copy(self) -> Headers:
        return Headers(list(self._items))

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (as one header line), or None."""
        key = canonical_name(name).lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every header line of ``name``, in order (not split at commas)."""
        key = canonical_name(name).lower()
        return [v for n, v in self._items if n.lower() == key]

    def values(self, name: str) -> list[str]:
        """Every value of a list header, split at commas, in order."""
        out: list[str] = []
        for line in self.get_all(name):
            out.extend(p for p in split_list(line) if p)
        return out

    def count(self, name: str) -> int:
        key = canonical_name(name).lower()
        return sum(1 for n, _ in self._items if n.lower() == key)

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before the first of the same name (or at the top)."""
        cname = canonical_name(name)
        key = cname.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items.insert(i, (cname, value))
                return
        self._items.insert(0, (cname, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` with one line, keeping the first one's position."""
        cname = canonical_name(name)
        key = cname.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = (cname, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0].lower() != key]
                return
        self._items.append((cname, value))

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [it for it in self._items if it[0].lower() != key]

    def remove_first_value(self, name: str) -> str | None:
        """Remove and return the first comma-separated value of ``name`` (top Via)."""
        key = canonical_name(name).lower()
        for i, (n, v) in enumerate(self._items):
            if n.lower() == key:
                parts = split_list(v)
                first = parts[0]
                if len(parts) == 1:
                    del self._items[i]
                else:
                    self._items[i] = (n, ", ".join(parts[1:]))
                return first
        return None


_VIA_RE = re.compile(r"SIP[ \t]*/[ \t]*([^ \t/]+)[ \t]*/[ \t]*([^ \t;]+)[ \t]+(.*)\Z", re.S | re.I)
_SENT_BY_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,10}))?\Z")

MAGIC_COOKIE = "z9hG4bK"


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    version: str = "2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_RE.match(text.strip())
        if not m:
            raise SipParseError(f"bad Via {text!r}")
        version, transport, rest = m.group(1), m.group(2).upper(), m.group(3)
        if not is_token(transport):
            raise SipParseError(f"bad Via {text!r}: transport")
        sent_by, _, ptext = rest.partition(";")
        sm = _SENT_BY_RE.match(sent_by.strip())
        if not sm:
            raise SipParseError(f"bad Via {text!r}: sent-by {sent_by.strip()!r}")
        port = None
        if sm.group(2) is not None:
            port = int(sm.group(2))
            if not 0 < port < 65536:
                raise SipParseError(f"bad Via {text!r}: port out of range")
        params = parse_params(ptext, f"Via {text!r}") if _ else {}
        return cls(transport, sm.group(1), port, params, version)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/{self.version}/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def rfc3261_branch(self) -> bool:
        b = self.params.get("branch")
        return b is not None and b.startswith(MAGIC_COOKIE)


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
            raise SipParseError(f"bad CSeq {text!r}")
        number = int(parts[0])
        if number >= 2**31:
            raise SipParseError(f"bad CSeq {text!r}: sequence number too large")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"
