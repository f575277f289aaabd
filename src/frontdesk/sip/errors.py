"""The two kinds of SIP error (STYLE.md #7).

`RemoteProtocolError`: the peer broke the protocol. The receiver answers it with a 4xx/5xx
when an answer is possible (``status``/``reason``), otherwise drops it and counts it.
`LocalProtocolError`: we tried to do something the protocol forbids — a bug in our code,
which tests must surface loudly. Neither class ever carries a traceback to a peer.
"""

from __future__ import annotations


class RemoteProtocolError(Exception):
    """The peer sent something invalid; ``status`` is what to answer (if answerable)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class SipParseError(RemoteProtocolError):
    """A message could not be parsed.

    ``partial`` holds whatever was parsed (a request with its headers) so a caller can try to
    answer 400 with the right Via/Call-ID/CSeq; it is None when nothing usable was found.
    """

    def __init__(self, reason: str, status: int = 400, partial: object | None = None) -> None:
        super().__init__(reason, status)
        self.partial = partial


class LocalProtocolError(Exception):
    """We broke the protocol: a programming error, never the peer's fault."""
