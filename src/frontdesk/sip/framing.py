"""Framing SIP over a byte stream (TCP, later TLS/WS): cut the stream into whole messages.

`StreamFramer.feed(data)` returns every message completed by ``data``, each as the exact
octets of its start line, headers, empty line and Content-Length octets of body (RFC 3261
§18.3: over a stream Content-Length is mandatory; absent is taken as 0). CRLFs between
messages are skipped (§7.5); a double CRLF there is an RFC 5626 §4.4.1 keep-alive "ping" and
is returned in order as the item `PING`, so the transport answers it with `PONG`.

A stream that cannot be framed (a header section or message over ``max_message``, a missing,
repeated, negative or non-numeric Content-Length value) raises `FramingError`: there is no
way to find where the next message starts, so the connection must be closed (RFC 4475
§3.1.2.2, §3.3.9). After a FramingError the framer is unusable. Whether a framed message
parses is `parse_message`'s business, not this module's. It never does I/O.
"""

from __future__ import annotations

import re

from frontdesk.sip.errors import RemoteProtocolError

PING = b"\r\n\r\n"
PONG = b"\r\n"

# a Content-Length header line in a header section whose folded lines were joined
_CONTENT_LENGTH_RE = re.compile(rb"\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)
_FOLD_RE = re.compile(rb"\r\n[ \t]+")


class FramingError(RemoteProtocolError):
    """The stream cannot be cut into messages; close the connection."""


def is_keepalive(datagram: bytes) -> bool:
    """True for a datagram of nothing but CR/LF (a NAT keep-alive some phones send over UDP:
    drop it, it is not a SIP message)."""
    return bool(datagram) and not datagram.strip(b"\r\n")


class StreamFramer:
    """Cuts one connection's bytes into messages; one framer per connection."""

    __slots__ = ("_body_end", "_broken", "_buffer", "_scan_from", "max_message")

    def __init__(self, max_message: int = 65535) -> None:
        self.max_message = max_message
        self._buffer = bytearray()
        self._scan_from = 0  # where to resume looking for the end of the header section
        self._body_end: int | None = None  # end of the current message once its head is known
        self._broken = False

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received octets; return the messages (and `PING` items) they complete."""
        if self._broken:
            raise FramingError("stream already failed to frame; close the connection")
        self._buffer += data
        out: list[bytes] = []
        try:
            while self._next(out):
                pass
        except FramingError:
            self._broken = True
            raise
        return out

    def _next(self, out: list[bytes]) -> bool:
        """Take one message or keep-alive off the buffer; False when more octets are needed."""
        buf = self._buffer
        if self._body_end is None:
            if not self._skip_crlf(out):
                return False
            end = buf.find(b"\r\n\r\n", self._scan_from)
            if end < 0:
                if len(buf) > self.max_message:
                    raise FramingError(f"header section longer than {self.max_message} octets")
                self._scan_from = max(0, len(buf) - 3)
                return False
            if end + 4 > self.max_message:
                raise FramingError(f"header section longer than {self.max_message} octets")
            length = self._content_length(bytes(buf[: end + 2]))
            self._body_end = end + 4 + length
            if self._body_end > self.max_message:
                raise FramingError(
                    f"message of {self._body_end} octets is over the {self.max_message} limit"
                )
        if len(buf) < self._body_end:
            return False
        out.append(bytes(buf[: self._body_end]))
        del buf[: self._body_end]
        self._body_end = None
        self._scan_from = 0
        return True

    def _skip_crlf(self, out: list[bytes]) -> bool:
        """Drop CRLFs before a start line, reporting each double CRLF as a ping.

        False when the buffer holds nothing else yet (or a lone CR/CRLF that may still become
        a ping).
        """
        buf = self._buffer
        while buf[:2] == b"\r\n":
            if buf[:4] == PING:
                out.append(PING)
                del buf[:4]
            elif len(buf) < 4 and PING.startswith(bytes(buf)):
                return False  # "\r\n" or "\r\n\r": wait to see whether a ping follows
            else:
                del buf[:2]
        if buf[:1] == b"\r" and len(buf) == 1:
            return False
        return bool(buf)

    def _content_length(self, head: bytes) -> int:
        """The Content-Length of a header section (ending in CRLF); 0 when absent."""
        if b"\n " in head or b"\n\t" in head:
            head = _FOLD_RE.sub(b" ", head)
        values = _CONTENT_LENGTH_RE.findall(head)
        if not values:
            return 0
        if len(values) > 1:
            raise FramingError("more than one Content-Length: cannot tell where the body ends")
        text = values[0].strip(b" \t")
        if not text.isdigit() or len(text) > 10:
            raise FramingError(f"bad Content-Length {text[:20]!r}")
        return int(text)
