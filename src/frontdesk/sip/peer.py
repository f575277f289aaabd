"""The far end of one SIP hop: transport, address and port.

A `Peer` names where a datagram came from or where bytes must go. The sans-I/O core hands
``(bytes, Peer)`` pairs to the network adapter and receives ``(message, Peer)`` from it; it
never opens a socket or resolves a name. This module must never do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from frontdesk.sip.errors import LocalProtocolError

TRANSPORTS = frozenset(("udp", "tcp", "tls", "ws", "wss"))


@dataclass(frozen=True, slots=True)
class Peer:
    """Transport (lower case: ``udp``, ``tcp``, ...), IP address or host, and port."""

    transport: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise LocalProtocolError(
                f"Peer transport {self.transport!r} is not one of {sorted(TRANSPORTS)} (lower case)"
            )

    @property
    def reliable(self) -> bool:
        """True for stream transports (no SIP-level retransmission, RFC 3261 §17)."""
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
