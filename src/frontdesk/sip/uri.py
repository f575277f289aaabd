"""SIP and other URIs (RFC 3261 §19.1, §25.1) and name-addr values (§20.10, §25.1).

Parsing is strict where RFC 4475 says an element must reject (whitespace inside a URI, an
unbalanced quote, non-token display names, an addr-spec with parameters outside ``<>``) and
tolerant of LWS where the grammar allows it. Percent-escapes are kept as received: the URI
text round-trips byte for byte. This module never does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from frontdesk.sip.errors import SipParseError

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?\Z")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WS = " \t"
# the usual sip:/sips: URI: user of unreserved/escaped characters, no password, no headers
_COMMON_SIP_URI_RE = re.compile(
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,%]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
    r"(?::([0-9]{1,5}))?(;[^?@]*)?\Z"
)


# never inside a URI: whitespace, controls, DEL, the delimiters that end one, and quotes
_NOT_IN_URI = frozenset(' <>"\x7f').union(chr(c) for c in range(32))
_PARAM_VALUE_CHARS = _TOKEN_CHARS.union("[]:")

# --- plain forms ---------------------------------------------------------------------------
# Anchored patterns for the forms phones actually send. Each accepts only text the general
# parser below also accepts, and the values built from a match equal what it would build
# (tests/sip/test_parser_lazy*.py fuzz both claims); anything else goes the general way, so
# errors and their messages stay the general parser's. No LWS, no quotes, no escapes.
TOKEN_RE = r"[A-Za-z0-9.!%*_+`'~-]"  # one token character (RFC 3261 §25.1)
PARAM_VALUE_RE = r"[A-Za-z0-9.!%*_+`'~:\[\]-]"  # token, IPv6 reference or host:port
PLAIN_PARAMS_RE = rf"(?:;{TOKEN_RE}++(?:={PARAM_VALUE_RE}++)?+)*+"  # ;a=b;flag (maybe empty)
HOST_RE = r"\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-.]++"
PORT_RE = r"[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]"
_USER = r"[A-Za-z0-9\-_.!~*'()&=+$,%]++"  # unreserved / escaped / user-unreserved, no ';?/'
_PLAIN_PARAMS = re.compile(rf";?{TOKEN_RE}++(?:={PARAM_VALUE_RE}++)?+{PLAIN_PARAMS_RE}")
_PLAIN_URI = rf"(sips?):(?:({_USER})@)?({HOST_RE})(?::({PORT_RE}))?"
_PLAIN_SIP_URI = re.compile(rf"{_PLAIN_URI}({PLAIN_PARAMS_RE})")
# name-addr: [token words | "quoted"] <plain sip URI> ;params
_PLAIN_NAME_ADDR = re.compile(
    rf'(?:("(?:[^"\\]|\\.)*+")[ \t]*+|({TOKEN_RE}++(?:[ \t]++{TOKEN_RE}++)*+)[ \t]*+)?'
    rf"<{_PLAIN_URI}({PLAIN_PARAMS_RE})>({PLAIN_PARAMS_RE})"
)
# addr-spec: a plain sip URI without URI parameters (the ;params are the header's) and ','
_PLAIN_ADDR_SPEC = re.compile(
    rf"(sips?):(?:({_USER.replace(',', '')})@)?({HOST_RE})(?::({PORT_RE}))?({PLAIN_PARAMS_RE})"
)


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 token."""
    return bool(text) and _TOKEN_CHARS.issuperset(text)


def is_digits(text: str, max_len: int = 10) -> bool:
    """True if ``text`` is 1..``max_len`` ASCII digits (``str.isdigit`` also accepts "²")."""
    return 0 < len(text) <= max_len and text.isascii() and text.isdigit()


def parse_params(text: str, what: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` parameters (leading ``;`` optional), tolerating LWS.

    Values may be quoted strings (kept with their quotes). An empty parameter (``;;``) is a
    protocol error naming ``what``.
    """
    if _PLAIN_PARAMS.fullmatch(text) is not None:
        return plain_params(text)
    return _parse_params_general(text, what)


def _parse_params_general(text: str, what: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    text = text.strip(_WS)
    if not text:
        return params
    if text[0] == ";":
        text = text[1:]
    raws = _split_outside_quotes(text, ";") if '"' in text else text.split(";")
    for raw in raws:
        name, eq, value = raw.partition("=")
        name = name.strip(_WS)
        if not is_token(name):
            raise SipParseError(f"{what}: bad parameter {raw.strip()!r}")
        if eq:
            value = value.strip(_WS)
            if not value or not (is_token(value) or _is_quoted(value) or _is_host_like(value)):
                raise SipParseError(f"{what}: bad value for parameter {name!r}")
            params[name] = value
        else:
            params[name] = None
    return params


def plain_params(text: str) -> dict[str, str | None]:
    """`parse_params` for text that `PLAIN_PARAMS_RE` matched (no LWS, quotes or ';;')."""
    params: dict[str, str | None] = {}
    for raw in (text[1:] if text[0] == ";" else text).split(";"):
        name, eq, value = raw.partition("=")
        params[name] = value if eq else None
    return params


def is_plain_sip_uri(text: str) -> bool:
    """True if ``text`` is a sip:/sips: URI in the plain form (so it parses, has no headers)."""
    return _PLAIN_SIP_URI.fullmatch(text) is not None


def is_plain_address(text: str) -> bool:
    """True if ``text`` is a From/To/Contact value in the plain form (so `NameAddr.parse`
    accepts it). False says nothing: the general parser decides."""
    pattern = _PLAIN_NAME_ADDR if "<" in text else _PLAIN_ADDR_SPEC
    return pattern.fullmatch(text) is not None


def address_tag(text: str) -> str | None:
    """``NameAddr.parse(text).tag`` without building the address when ``text`` is plain."""
    bracketed = "<" in text
    m = (_PLAIN_NAME_ADDR if bracketed else _PLAIN_ADDR_SPEC).fullmatch(text)
    if m is None:
        return NameAddr.parse(text).tag
    ptext = m.group(8 if bracketed else 5)  # the header's own ;params
    if not ptext:
        return None
    # `NameAddr.param`: the first spelling of "tag" (any case) wins, with its last value
    spelling: str | None = None
    value: str | None = None
    for raw in ptext[1:].split(";"):
        name, eq, found = raw.partition("=")
        if spelling is None and name.lower() == "tag":
            spelling = name
        if name == spelling:
            value = found if eq else None
    return value


def format_params(params: dict[str, str | None]) -> str:
    """Serialize parameters as ``;a=b;c``."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _is_quoted(value: str) -> bool:
    return len(value) >= 2 and value[0] == '"' and value[-1] == '"'


def _is_host_like(value: str) -> bool:
    # IPv6 references and host:port values appear as parameter values (received, maddr)
    return _PARAM_VALUE_CHARS.issuperset(value)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    start = 0
    in_quote = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quote:
        raise SipParseError("unterminated quoted string")
    parts.append(text[start:])
    return parts


@dataclass(slots=True)
class SipURI:
    """A URI. For ``sip``/``sips`` every part is parsed; other schemes keep ``opaque``."""

    scheme: str
    host: str = ""
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipURI:
        """Parse a URI; raise SipParseError naming the problem."""
        plain = _PLAIN_SIP_URI.fullmatch(text)
        if plain is not None:
            scheme, user, host, port, ptext = plain.groups()
            return cls(
                scheme,
                host,
                user,
                None,
                int(port) if port else None,
                plain_params(ptext) if ptext else {},
                None,
            )
        m = _COMMON_SIP_URI_RE.match(text)
        if m is None or not _NOT_IN_URI.isdisjoint(text):
            return cls._parse_general(text)
        # fast path, same result as the general one: [user@]host[:port][;params]
        scheme, user, host, port_text, ptext = m.groups()
        port = None
        if port_text is not None:
            port = int(port_text)
            if not 0 < port < 65536:
                raise SipParseError(f"bad URI {text!r}: port out of range")
        params = parse_params(ptext, f"URI {text!r}") if ptext else {}
        return cls(scheme, host, user, None, port, params, None)

    @classmethod
    def _parse_general(cls, text: str) -> SipURI:
        scheme, colon, rest = text.partition(":")
        if not colon or not _SCHEME_RE.match(scheme):
            raise SipParseError(f"bad URI {text!r}: missing or invalid scheme")
        if not _NOT_IN_URI.isdisjoint(rest):
            raise SipParseError(f"bad URI {text!r}: whitespace, control, quote or <> inside a URI")
        lower = scheme.lower()
        if lower not in ("sip", "sips"):
            if not rest:
                raise SipParseError(f"bad URI {text!r}: empty")
            return cls(scheme=scheme, opaque=rest)
        # the user part may hold ';', '?', ',' and '/' unescaped (RFC 3261 user-unreserved),
        # so the host part starts after the last '@'
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user, _, pw = userinfo.partition(":")
            password = pw if _ else None
            if not user:
                raise SipParseError(f"bad URI {text!r}: empty user part")
        headers: str | None = None
        q = rest.find("?")
        if q >= 0:
            rest, headers = rest[:q], rest[q + 1 :]
        hostport, semi, ptext = rest.partition(";")
        m = _HOST_RE.match(hostport)
        if not m:
            raise SipParseError(f"bad URI {text!r}: invalid host {hostport!r}")
        port = None
        if m.group(2) is not None:
            port = int(m.group(2))
            if not 0 < port < 65536:
                raise SipParseError(f"bad URI {text!r}: port out of range")
        params = parse_params(semi + ptext, f"URI {text!r}") if semi else {}
        return cls(lower, m.group(1), user, password, port, params, headers)

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(format_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)

    def copy(self) -> SipURI:
        """An independent copy (the parameters dict is not shared)."""
        return SipURI(
            self.scheme,
            self.host,
            self.user,
            self.password,
            self.port,
            dict(self.params),
            self.headers,
            self.opaque,
        )

    @property
    def is_sip(self) -> bool:
        return self.opaque is None

    @property
    def host_no_brackets(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def param(self, name: str) -> str | None:
        """A parameter's value, case-insensitively by name; None if absent or valueless."""
        lname = name.lower()
        for k, v in self.params.items():
            if k.lower() == lname:
                return v
        return None

    def has_param(self, name: str) -> bool:
        lname = name.lower()
        return any(k.lower() == lname for k in self.params)


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;params`` or a bare addr-spec with params (From, To, Contact, Route)."""

    uri: SipURI
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    bracketed: bool = True

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse a name-addr or addr-spec followed by header parameters."""
        if "<" in text:
            m = _PLAIN_NAME_ADDR.fullmatch(text)
            if m is not None:
                quoted, words, scheme, user, host, port, uparams, hparams = m.groups()
                uri = SipURI(
                    scheme,
                    host,
                    user,
                    None,
                    int(port) if port else None,
                    plain_params(uparams) if uparams else {},
                    None,
                )
                return cls(uri, quoted or words, plain_params(hparams) if hparams else {}, True)
        else:
            m = _PLAIN_ADDR_SPEC.fullmatch(text)
            if m is not None:
                scheme, user, host, port, hparams = m.groups()
                uri = SipURI(scheme, host, user, None, int(port) if port else None, {}, None)
                return cls(uri, None, plain_params(hparams) if hparams else {}, False)
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> NameAddr:
        s = text.strip(_WS)
        display: str | None = None
        if s.startswith('"'):
            end = _closing_quote(s)
            display = s[: end + 1]
            s = s[end + 1 :].lstrip(_WS)
            if not s.startswith("<"):
                raise SipParseError(f"bad address {text!r}: quoted display name without <uri>")
        lt = s.find("<")
        if lt >= 0:
            name = s[:lt].strip(_WS)
            if name:
                words = name.replace("\t", " ").split(" ")
                if display is not None or not all(_is_display_word(w) for w in words if w):
                    raise SipParseError(
                        f"bad address {text!r}: display name must be tokens or quoted"
                    )
                display = name
            gt = s.find(">", lt)
            if gt < 0:
                raise SipParseError(f"bad address {text!r}: missing '>'")
            uri = SipURI.parse(s[lt + 1 : gt])
            rest = s[gt + 1 :].lstrip(_WS)
            if rest and rest[0] != ";":
                raise SipParseError(f"bad address {text!r}: text after '>' must be ;parameters")
            params = parse_params(rest, f"address {text!r}") if rest else {}
            return cls(uri, display, params, True)
        # addr-spec: parameters after ';' belong to the header, and ',' ';' '?' must not
        # appear inside the URI itself (RFC 3261 §20.10)
        uri_text, semi, ptext = s.partition(";")
        uri_text = uri_text.strip(_WS)
        if "?" in uri_text or "," in uri_text:
            raise SipParseError(f"bad address {text!r}: URI with '?' or ',' must be in <>")
        uri = SipURI.parse(uri_text)
        params = parse_params(semi + ptext, f"address {text!r}") if semi else {}
        return cls(uri, None, params, False)

    def __str__(self) -> str:
        head = f"{self.display_name} " if self.display_name else ""
        return f"{head}<{self.uri}>{format_params(self.params)}"

    def copy(self) -> NameAddr:
        """An independent copy (URI and parameters are not shared)."""
        return NameAddr(self.uri.copy(), self.display_name, dict(self.params), self.bracketed)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def display_text(self) -> str:
        """The display name without quotes and escapes ("" if none)."""
        d = self.display_name or ""
        if _is_quoted(d):
            d = re.sub(r"\\(.)", r"\1", d[1:-1])
        return d

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.params.items():
            if k.lower() == lname:
                return v
        return None


def _is_display_word(word: str) -> bool:
    """A token, leniently also with non-ASCII letters: phones send ``Jürgen <sip:...>``
    unquoted. ASCII separators (',' '"' '@' ...) still make the name invalid (RFC 4475
    §3.1.2.15)."""
    return is_token(word) or (
        not word.isascii() and _TOKEN_CHARS.issuperset(c for c in word if c < "\x80")
    )


def _closing_quote(s: str) -> int:
    i = 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    raise SipParseError(f"unterminated quoted string in {s!r}")
