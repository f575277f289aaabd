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
from frontdesk.sip.uri import (
    HOST_RE,
    PLAIN_PARAMS_RE,
    PORT_RE,
    TOKEN_RE,
    format_params,
    is_token,
    parse_params,
    plain_params,
)

COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}

_KNOWN = (
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Route",
    "Record-Route",
    "Allow",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "User-Agent",
    "Server",
    "Authorization",
    "WWW-Authenticate",
    "Proxy-Authorization",
    "Proxy-Authenticate",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Event",
    "Subscription-State",
    "Allow-Events",
    "Date",
    "Timestamp",
    "Min-Expires",
    "Retry-After",
    "Reason",
    "Warning",
    "Subject",
    "Content-Encoding",
    "Content-Disposition",
    "Refer-To",
    "Referred-By",
    "Session-Expires",
    "Min-SE",
    "P-Asserted-Identity",
    "Privacy",
    "Path",
    "RSeq",
    "RAck",
    "Organization",
    "Priority",
    "In-Reply-To",
    "Reply-To",
    "Call-Info",
    "Alert-Info",
    "Error-Info",
    "Authentication-Info",
    "MIME-Version",
    "Diversion",
    "Replaces",
)
CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN}
for _c, _full in COMPACT_FORMS.items():
    CANONICAL[_c] = _full

# Headers whose value may be a comma-separated list (RFC 3261 §7.3.1).
MULTI_VALUED = frozenset(
    n.lower()
    for n in (
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Path",
        "Warning",
        "Diversion",
        "Reason",
        "Call-Info",
        "Alert-Info",
        "Error-Info",
        "In-Reply-To",
    )
)
# Headers that must appear at most once (RFC 4475 §3.3.8 multi01, §3.3.9 mcl01).
SINGLE_VALUED = frozenset(
    ("from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type", "expires")
)


_NAME_CACHE: dict[str, tuple[str, str]] = {}  # spelling -> (canonical name, lookup key)
_NAME_CACHE_MAX = 1024  # bounded: header names come from peers


def _name_and_key(name: str) -> tuple[str, str]:
    """(canonical name, lower-case lookup key) for any spelling, cached for common ones."""
    found = _NAME_CACHE.get(name)
    if found is None:
        canonical = CANONICAL.get(name.lower(), name)
        found = (canonical, canonical.lower())
        if len(_NAME_CACHE) < _NAME_CACHE_MAX:
            _NAME_CACHE[name] = found
    return found


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded)."""
    return _name_and_key(name)[0]


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes and ``<...>``."""
    if "," not in value:
        return [value.strip()]
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",")]
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
    A parallel list of lower-case keys makes every lookup one C-level scan.
    """

    __slots__ = ("_items", "_keys")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        self._keys: list[str] = []
        for name, value in items or ():
            cname, key = _NAME_CACHE.get(name) or _name_and_key(name)
            self._items.append((cname, value))
            self._keys.append(key)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]], keys: list[str]) -> Headers:
        """Build from canonical names and their keys (the parser has computed both)."""
        headers = cls()  # not cls.__new__(cls): mypyc-compiled classes refuse that (~40 ns more)
        headers._items = items
        headers._keys = keys
        return headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _name_and_key(name)[1] in self._keys

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        return Headers._trusted(list(self._items), list(self._keys))

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (as one header line), or None."""
        found = _NAME_CACHE.get(name) or _name_and_key(name)
        try:
            return self._items[self._keys.index(found[1])][1]
        except ValueError:
            return None

    def _first(self, key: str) -> str | None:
        """`get` for a lower-case canonical key (skips the spelling lookup on hot paths)."""
        try:
            return self._items[self._keys.index(key)][1]
        except ValueError:
            return None

    def get_all(self, name: str) -> list[str]:
        """Every header line of ``name``, in order (not split at commas)."""
        return self._all((_NAME_CACHE.get(name) or _name_and_key(name))[1])

    def _all(self, key: str) -> list[str]:
        """`get_all` for a lower-case canonical key."""
        keys = self._keys
        n = keys.count(key)
        if n == 1:
            return [self._items[keys.index(key)][1]]
        if n == 0:
            return []
        return [item[1] for k, item in zip(keys, self._items, strict=True) if k == key]

    def values(self, name: str) -> list[str]:
        """Every value of a list header, split at commas, in order."""
        out: list[str] = []
        for line in self._all((_NAME_CACHE.get(name) or _name_and_key(name))[1]):
            if "," not in line:
                value = line.strip()
                if value:
                    out.append(value)
            else:
                out.extend(p for p in split_list(line) if p)
        return out

    def count(self, name: str) -> int:
        return self._keys.count(_name_and_key(name)[1])

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        cname, key = _NAME_CACHE.get(name) or _name_and_key(name)
        self._items.append((cname, value))
        self._keys.append(key)

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before the first of the same name (or at the top)."""
        cname, key = _name_and_key(name)
        try:
            i = self._keys.index(key)
        except ValueError:
            i = 0
        self._items.insert(i, (cname, value))
        self._keys.insert(i, key)

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` with one line, keeping the first one's position."""
        cname, key = _NAME_CACHE.get(name) or _name_and_key(name)
        try:
            i = self._keys.index(key)
        except ValueError:
            self.add(cname, value)
            return
        if self._keys.count(key) == 1:  # the common case: replace the one line in place
            self._items[i] = (cname, value)
            return
        self.remove(cname)
        self._items.insert(i, (cname, value))
        self._keys.insert(i, key)

    def remove(self, name: str) -> None:
        key = _name_and_key(name)[1]
        if key in self._keys:
            kept = [(k, it) for k, it in zip(self._keys, self._items, strict=True) if k != key]
            self._keys = [k for k, _ in kept]
            self._items = [it for _, it in kept]

    def _first_problem(self, required: tuple[str, ...], single: frozenset[str]) -> str | None:
        """The first required header (lower-case keys) that is missing or single-valued
        header that repeats."""
        keys = self._keys
        for key in required:
            if key not in keys:
                return f"missing required header {canonical_name(key)}"
        if len(set(keys)) != len(keys):
            for key in single:
                if keys.count(key) > 1:
                    return f"more than one {canonical_name(key)} header"
        return None

    def remove_first_value(self, name: str) -> str | None:
        """Remove and return the first comma-separated value of ``name`` (top Via)."""
        key = _name_and_key(name)[1]
        try:
            i = self._keys.index(key)
        except ValueError:
            return None
        n, v = self._items[i]
        parts = split_list(v)
        first = parts[0]
        if len(parts) == 1:
            del self._items[i]
            del self._keys[i]
        else:
            self._items[i] = (n, ", ".join(parts[1:]))
        return first


_VIA_RE = re.compile(
    r"[ \t]*SIP[ \t]*/[ \t]*([^ \t/]+)[ \t]*/[ \t]*([^ \t;/]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,10}))?[ \t]*(?:;(.*))?\Z",
    re.S | re.I,
)
# the plain form phones send, ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``: whatever it
# matches `Via.parse` accepts, with the same result (fuzzed in tests/sip/test_parser_lazy*.py)
_PLAIN_VIA_RE = re.compile(
    rf"SIP/2\.0/({TOKEN_RE}++) ({HOST_RE})(?::({PORT_RE}))?({PLAIN_PARAMS_RE})"
)
_CSEQ_RE = re.compile(rf"[ \t]*([0-9]{{1,10}})[ \t]+({TOKEN_RE}+)[ \t]*\Z")

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
        """Parse one Via value (LWS allowed around '/', ':', ';' and '=', RFC 4475 wsinv)."""
        plain = _PLAIN_VIA_RE.fullmatch(text)
        if plain is not None:
            transport, host, port, ptext = plain.groups()
            return cls(
                transport.upper(),
                host,
                int(port) if port else None,
                plain_params(ptext) if ptext else {},
                "2.0",
            )
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> Via:
        m = _VIA_RE.match(text)
        if not m:
            raise SipParseError(f"bad Via {text!r}: expected 'SIP/2.0/transport host[:port]'")
        version, transport, host, port_text, ptext = m.groups()
        if not is_token(transport) or not is_token(version):
            raise SipParseError(f"bad Via {text!r}: protocol version or transport")
        port = None
        if port_text is not None:
            port = int(port_text)
            if not 0 < port < 65536:
                raise SipParseError(f"bad Via {text!r}: port out of range")
        params = parse_params(";" + ptext, f"Via {text!r}") if ptext is not None else {}
        return cls(transport.upper(), host, port, params, version)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/{self.version}/{self.transport} {self.host}{port}{format_params(self.params)}"

    def copy(self) -> Via:
        """An independent copy (the parameters dict is not shared)."""
        return Via(self.transport, self.host, self.port, dict(self.params), self.version)

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
        m = _CSEQ_RE.match(text)
        if m is None:
            raise SipParseError(f"bad CSeq {text!r}: expected 'number METHOD'")
        number = int(m.group(1))
        if number >= 2**31:
            raise SipParseError(f"bad CSeq {text!r}: sequence number must be below 2**31")
        return cls(number, m.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def check_via_line(line: str) -> None:
    """Raise `SipParseError` (the one `Via.parse` raises) unless every Via value on one
    header line parses. Values in the plain form are only matched, never built."""
    if "," not in line:
        if _PLAIN_VIA_RE.fullmatch(line) is None:
            Via.parse(line.strip())
        return
    for value in split_list(line):
        if _PLAIN_VIA_RE.fullmatch(value) is None:
            Via.parse(value)
