"""SDP session descriptions (RFC 4566) and the answer to an offer (RFC 3264 offer/answer).

`SessionDescription.parse(body)` reads an SDP body into a model; ``bytes(sd)`` writes it back
in RFC 4566 line order (so a well-ordered body round-trips byte for byte). Media sections
expose formats, rtpmap/fmtp/ptime/direction attributes and the connection address that
applies to them. `build_answer(offer, ...)` answers an audio offer with one G.711 codec
(plus telephone-event when offered), keeping the offer's m-line order and rejecting every
other stream with port 0.

Errors are the peer's: `SdpParseError` (answer 400) and `NoCommonCodec` (answer 488). This
module never does I/O, never looks at a clock and never picks random numbers: session ids
and versions come from the caller.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from frontdesk.sip.errors import RemoteProtocolError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSED = dict(zip(DIRECTIONS, ("sendrecv", "recvonly", "sendonly", "inactive"), strict=True))
# RFC 3551 static payload types a G.711 PBX meets (others need an rtpmap)
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 8: ("PCMA", 8000),
    9: ("G722", 8000), 13: ("CN", 8000), 18: ("G729", 8000),
}  # fmt: skip
TELEPHONE_EVENT = "telephone-event"
_LINE_TYPES = frozenset("vosiuepcbtrzkam")
_SESSION_ONCE = frozenset("vosiuzk")  # at most one each at session level
_SESSION_TEXT = {"i": "information", "u": "uri", "z": "timezone", "k": "key"}
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
_RTPMAP_RE = re.compile(r"([0-9]{1,3})[ \t]+([^/\s]+)/([0-9]{1,6})(?:/([0-9]{1,2}))?[ \t]*\Z")


class SdpParseError(RemoteProtocolError):
    """The body is not a usable session description (answer 400)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason, status)


class NoCommonCodec(RemoteProtocolError):
    """No audio stream of the offer can be answered (answer 488 Not Acceptable Here)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, 488)


@dataclass(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>``."""

    username: str
    session_id: str
    session_version: str
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @classmethod
    def parse(cls, text: str) -> Origin:
        parts = text.split(" ")
        if len(parts) != 6 or not all(parts):
            raise SdpParseError(f"bad o= line {text[:80]!r}: needs six fields")
        if not (parts[1].isascii() and parts[1].isdigit() and parts[2].isdigit()):
            raise SdpParseError(f"bad o= line {text[:80]!r}: session id and version are numbers")
        return cls(*parts)

    def __str__(self) -> str:
        fields = (self.username, self.session_id, self.session_version, self.nettype)
        return " ".join((*fields, self.addrtype, self.address))


@dataclass(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (the address may carry /ttl)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, text: str) -> Connection:
        parts = text.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SdpParseError(f"bad c= line {text[:80]!r}: needs 'IN IP4|IP6 address'")
        return cls(parts[2], parts[1], parts[0])

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address, "IP6" if ":" in address else "IP4")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """One payload format: ``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, text: str) -> RtpMap:
        m = _RTPMAP_RE.match(text)
        if not m:
            raise SdpParseError(f"bad a=rtpmap:{text[:60]}")
        channels = int(m.group(4)) if m.group(4) else None
        return cls(int(m.group(1)), m.group(2), int(m.group(3)), channels)

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"

    def is_codec(self, name: str, clock_rate: int = 8000) -> bool:
        return self.encoding.lower() == name.lower() and self.clock_rate == clock_rate


Attribute = tuple[str, str | None]  # a=name:value, or a=flag


def _attribute(text: str) -> Attribute:
    name, colon, value = text.partition(":")
    if not name or not _TOKEN_RE.match(name):
        raise SdpParseError(f"bad attribute a={text[:60]}")
    return (name, value if colon else None)


def _format_attribute(attr: Attribute) -> str:
    return attr[0] if attr[1] is None else f"{attr[0]}:{attr[1]}"


def _first(attributes: list[Attribute], name: str) -> str | None:
    for key, value in attributes:
        if key == name:
            return value
    return None


@dataclass(slots=True)
class Media:
    """One media section: ``m=<media> <port>[/<count>] <proto> <fmt> ...`` and its lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    title: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[str] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    @classmethod
    def parse_m_line(cls, text: str) -> Media:
        parts = text.split(" ")
        if len(parts) < 4 or not all(parts):
            raise SdpParseError(f"bad m= line {text[:80]!r}: needs media, port, proto, formats")
        port_text, slash, count_text = parts[1].partition("/")
        if not _digits(port_text, 5) or (slash and not _digits(count_text, 5)):
            raise SdpParseError(f"bad m= line {text[:80]!r}: port")
        port = int(port_text)
        if port > 65535:
            raise SdpParseError(f"bad m= line {text[:80]!r}: port out of range")
        count = int(count_text) if slash else None
        return cls(parts[0], port, parts[2], parts[3:], count)

    def m_line(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return f"{self.media} {port} {self.proto} {' '.join(self.formats)}"

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value`` (None if absent or a flag)."""
        return _first(self.attributes, name)

    def has_attribute(self, name: str) -> bool:
        return any(key == name for key, _ in self.attributes)

    @property
    def rtpmaps(self) -> dict[str, RtpMap]:
        """Format -> RtpMap for every format, from a=rtpmap or the static payload table (a format
        with neither, or with an rtpmap that does not parse, is left out)."""
        explicit: dict[str, RtpMap] = {}
        for key, value in self.attributes:
            if key == "rtpmap" and value is not None:
                try:
                    rtpmap = RtpMap.parse(value)
                except SdpParseError:
                    continue  # e.g. RFC 4475's "a=rtpmap:31 LPC": that format stays unknown
                explicit.setdefault(str(rtpmap.payload_type), rtpmap)
        out: dict[str, RtpMap] = {}
        for fmt in self.formats:
            if fmt in explicit:
                out[fmt] = explicit[fmt]
            elif fmt.isdigit() and int(fmt) in STATIC_PAYLOAD_TYPES:
                name, rate = STATIC_PAYLOAD_TYPES[int(fmt)]
                out[fmt] = RtpMap(int(fmt), name, rate)
        return out

    def fmtp(self, fmt: str) -> str | None:
        """The ``a=fmtp:<fmt> <parameters>`` parameters of one format."""
        for key, value in self.attributes:
            if key == "fmtp" and value is not None:
                pt, _, params = value.partition(" ")
                if pt == fmt:
                    return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        return int(value) if value is not None and _digits(value.strip(), 4) else None

    @property
    def direction(self) -> str | None:
        """This section's own direction attribute; None means "as the session says"."""
        for key, value in self.attributes:
            if key in DIRECTIONS and value is None:
                return key
        return None

    def lines(self) -> list[str]:
        out = [f"m={self.m_line()}"]
        if self.title is not None:
            out.append(f"i={self.title}")
        out += [f"c={c}" for c in self.connections]
        out += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={_format_attribute(a)}" for a in self.attributes]
        return out


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body. ``times`` keeps the t= and r= lines in order as (type, value)."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    times: list[tuple[str, str]] = field(default_factory=lambda: [("t", "0 0")])
    timezone: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        """Parse an SDP body; raise SdpParseError naming the line that is wrong."""
        return _Parser().run(data)

    def __bytes__(self) -> bytes:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        for letter, value in (("i", self.information), ("u", self.uri)):
            if value is not None:
                lines.append(f"{letter}={value}")
        lines += [f"e={e}" for e in self.emails] + [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"{letter}={value}" for letter, value in self.times]
        for letter, value in (("z", self.timezone), ("k", self.key)):
            if value is not None:
                lines.append(f"{letter}={value}")
        lines += [f"a={_format_attribute(a)}" for a in self.attributes]
        for media in self.media:
            lines += media.lines()
        return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")

    @property
    def direction(self) -> str:
        """The session-level direction (sendrecv when none is given, RFC 3264 §5.1)."""
        for key, value in self.attributes:
            if key in DIRECTIONS and value is None:
                return key
        return "sendrecv"

    def media_direction(self, media: Media) -> str:
        return media.direction or self.direction

    def connection_for(self, media: Media) -> Connection | None:
        """Where the media goes: the section's c= line, else the session's."""
        return media.connections[0] if media.connections else self.connection

    def attribute(self, name: str) -> str | None:
        return _first(self.attributes, name)


def _digits(text: str, max_len: int) -> bool:
    return 0 < len(text) <= max_len and text.isascii() and text.isdigit()


class _Parser:
    """Reads SDP lines in order: session part, then one section per m= line."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.sd: SessionDescription | None = None
        self.fields: dict[str, str] = {}

    def run(self, data: bytes) -> SessionDescription:
        text = data.decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            raise SdpParseError("empty SDP body")
        for number, raw in enumerate(lines, 1):
            line = raw[:-1] if raw.endswith("\r") else raw
            if len(line) < 2 or line[1] != "=" or line[0] not in _LINE_TYPES:
                raise SdpParseError(f"SDP line {number} {line[:40]!r} is not '<letter>=<value>'")
            if number == 1 and line != "v=0":
                raise SdpParseError("SDP must start with v=0")
            self.line(line[0], line[2:], number)
        return self.finish()

    def line(self, letter: str, value: str, number: int) -> None:
        if self.sd is not None and self.sd.media:
            self.media_line(self.sd.media[-1], letter, value, number)
            return
        if letter in _SESSION_ONCE and letter in self.seen:
            raise SdpParseError(f"SDP line {number}: more than one {letter}= line in the session")
        self.seen.add(letter)
        if letter == "o":
            self.sd = SessionDescription(Origin.parse(value), times=[])
            return
        if self.sd is None:
            if letter == "v":
                return
            raise SdpParseError(f"SDP line {number}: {letter}= before the o= line")
        self.session_line(self.sd, letter, value)

    def session_line(self, sd: SessionDescription, letter: str, value: str) -> None:
        if letter == "s":
            sd.session_name = value
        elif letter in _SESSION_TEXT:
            setattr(sd, _SESSION_TEXT[letter], value)
        elif letter == "e":
            sd.emails.append(value)
        elif letter == "p":
            sd.phones.append(value)
        elif letter == "c":
            if sd.connection is not None:
                raise SdpParseError("more than one session-level c= line")
            sd.connection = Connection.parse(value)
        elif letter == "b":
            sd.bandwidths.append(value)
        elif letter in "tr":
            sd.times.append((letter, value))
        elif letter == "a":
            sd.attributes.append(_attribute(value))
        elif letter == "m":
            sd.media.append(Media.parse_m_line(value))

    def media_line(self, media: Media, letter: str, value: str, number: int) -> None:
        assert self.sd is not None
        if letter == "m":
            self.sd.media.append(Media.parse_m_line(value))
        elif letter == "i" and media.title is None:
            media.title = value
        elif letter == "c":
            media.connections.append(Connection.parse(value))
        elif letter == "b":
            media.bandwidths.append(value)
        elif letter == "k" and media.key is None:
            media.key = value
        elif letter == "a":
            media.attributes.append(_attribute(value))
        else:
            raise SdpParseError(f"SDP line {number}: {letter}= is not allowed in a media section")

    def finish(self) -> SessionDescription:
        sd = self.sd
        if sd is None:
            raise SdpParseError("SDP has no o= line")
        if "s" not in self.seen:
            raise SdpParseError("SDP has no s= line")
        if not any(letter == "t" for letter, _ in sd.times):
            raise SdpParseError("SDP has no t= line")
        for media in sd.media:
            if not media.connections and sd.connection is None and media.port != 0:
                raise SdpParseError(f"no c= line for the {media.media} stream")
        return sd


def build_answer(
    offer: SessionDescription,
    supported_codecs: Sequence[str] = ("PCMU", "PCMA"),
    *,
    local_ip: str,
    local_port: int,
    session_id: str | None = None,
    session_version: int = 1,
    ptime: int = 20,
    username: str = "frontdesk",
) -> SessionDescription:
    """The RFC 3264 answer to ``offer`` from one audio endpoint at ``local_ip:local_port``.

    The first usable audio stream (RTP/AVP, port not 0) is answered with the first codec of
    ``supported_codecs`` (our preference order) that the offer lists, under the offer's
    payload type, plus telephone-event/8000 when offered (RFC 4733 DTMF); the direction is
    mirrored. Every other m-line is kept in place and rejected with port 0. ``t=`` is the
    offer's. Raises NoCommonCodec (answer 488) when no audio stream can be answered.
    """
    answer = SessionDescription(
        Origin(
            username,
            session_id or offer.origin.session_id,
            str(session_version),
            "IN",
            Connection.for_address(local_ip).addrtype,
            local_ip,
        ),
        connection=Connection.for_address(local_ip),
        times=list(offer.times),
    )
    problems: list[str] = []
    accepted = False
    for media in offer.media:
        answered = None if accepted else _answer_audio(offer, media, supported_codecs, problems)
        if answered is None:
            answer.media.append(Media(media.media, 0, media.proto, list(media.formats)))
            continue
        answered.port = local_port
        if ptime:
            answered.attributes.append(("ptime", str(ptime)))
        answer.media.append(answered)
        accepted = True
    if not accepted:
        if not problems:
            kinds = ", ".join(m.media for m in offer.media) or "none"
            raise NoCommonCodec(f"the offer has no audio stream we can take (media: {kinds})")
        raise NoCommonCodec("; ".join(problems))
    return answer


def _answer_audio(
    offer: SessionDescription, media: Media, supported: Sequence[str], problems: list[str]
) -> Media | None:
    """An answered audio section (port still to set), or None with the reason noted."""
    if media.media != "audio" or media.port == 0:
        return None
    if media.proto != "RTP/AVP":
        problems.append(f"audio stream uses {media.proto}; only RTP/AVP is supported")
        return None
    rtpmaps = media.rtpmaps
    candidates = (fmt for name in supported for fmt in media.formats if _is(rtpmaps, fmt, name))
    chosen = next(candidates, None)
    if chosen is None:
        offered = [f"{m.encoding}/{m.clock_rate}" for m in rtpmaps.values()] or media.formats
        problems.append(
            f"no common audio codec: offer has {', '.join(offered)}; "
            f"we support {', '.join(supported)}"
        )
        return None
    formats = [chosen]
    attributes: list[Attribute] = [("rtpmap", str(rtpmaps[chosen]))]
    event = next((f for f, m in rtpmaps.items() if m.is_codec(TELEPHONE_EVENT)), None)
    if event is not None:
        formats.append(event)
        attributes.append(("rtpmap", str(rtpmaps[event])))
        attributes.append(("fmtp", f"{event} {media.fmtp(event) or '0-15'}"))
    attributes.append((_REVERSED[offer.media_direction(media)], None))
    return Media("audio", 0, media.proto, formats, attributes=attributes)


def _is(rtpmaps: dict[str, RtpMap], fmt: str, codec: str) -> bool:
    return fmt in rtpmaps and rtpmaps[fmt].is_codec(codec)
