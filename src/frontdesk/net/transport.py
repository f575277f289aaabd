"""asyncio SIP transports: UDP and TCP listening on the same address and port.

This is the only place SIP bytes meet sockets. It hands every datagram / framed stream
message to one callback with the `Peer` it came from, and sends bytes to a `Peer` (reusing
the TCP connection the peer opened, which is how phones behind NAT stay reachable). It knows
nothing of SIP beyond framing and never parses or interprets messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import cast

from frontdesk.sip.framing import PING, FramingError, StreamFramer, is_keepalive
from frontdesk.sip.peer import Peer

log = logging.getLogger("frontdesk.net")

MessageHandler = Callable[[bytes, Peer], None]
MAX_TCP_CONNECTIONS = 10_000
TCP_IDLE_TIMEOUT = 3600.0
MAX_CACHED_PEERS = 10_000  # UDP source addresses whose Peer is reused (then start afresh)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.peers: dict[tuple[str, int], Peer] = {}  # Peer is immutable: one per address

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_keepalive(data):  # CRLF keep-alives from phones behind NAT
            return
        peer = self.peers.get(addr)
        if peer is None:
            if len(self.peers) >= MAX_CACHED_PEERS:
                self.peers.clear()
            peer = self.peers[addr] = Peer("udp", addr[0], addr[1])
        self.owner.on_message(data, peer)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction layer's timers deal with it
        log.debug("udp error: %s", exc)


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.framer = StreamFramer(owner.max_message)
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, so no isinstance check
        self.transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer("tcp", host, port)
        if len(self.owner.tcp) >= MAX_TCP_CONNECTIONS:
            log.warning("too many TCP connections, refusing %s:%s", host, port)
            transport.close()
            return
        self.owner.tcp[(host, port)] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            messages = self.framer.feed(data)
        except FramingError as e:
            self.owner.framing_errors += 1
            log.info("closing TCP connection from %s:%s: %s", self.peer.host, self.peer.port, e)
            self.transport.close()
            return
        for message in messages:
            if message == PING:  # RFC 5626 keep-alive ping -> pong
                self.transport.write(b"\r\n")
                continue
            self.owner.on_message(message, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.owner.tcp.pop((self.peer.host, self.peer.port), None)


class SipTransport:
    """UDP and TCP on one host:port, one callback for every message received."""

    def __init__(self, host: str, port: int, on_message: MessageHandler,
                 max_message: int = 65535) -> None:
        self.host = host
        self.port = port
        self.on_message = on_message
        self.max_message = max_message
        self.tcp: dict[tuple[str, int], _TcpProtocol] = {}
        self.framing_errors = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._pending: dict[tuple[str, int], list[bytes]] = {}

    async def start(self) -> None:
        """Bind UDP and TCP; raise OSError naming the address if it is taken."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):  # the kernel caps it at rmem_max/wmem_max
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"cannot listen for SIP on udp {self.host}:{self.port}: "
                                   f"{e.strerror} (choose another --sip address)") from e
        self.port = sock.getsockname()[1]
        udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=sock)
        self._udp = udp
        self._udp_sock = sock
        try:
            self._server = await loop.create_server(
                lambda: _TcpProtocol(self), self.host, self.port, reuse_address=True)
        except OSError as e:
            udp.close()
            raise OSError(e.errno, f"cannot listen for SIP on tcp {self.host}:{self.port}: "
                                   f"{e.strerror} (choose another --sip address)") from e

    def send(self, data: bytes, peer: Peer) -> None:
        """Send one message; over TCP reuse the peer's connection or open one."""
        if peer.transport == "udp":
            # straight to the non-blocking socket (the transport's sendto costs several
            # times more); only a full socket buffer falls back to the buffering transport
            if self._udp_sock is None:
                return
            try:
                self._udp_sock.sendto(data, (peer.host, peer.port))
            except BlockingIOError:
                if self._udp is not None:
                    self._udp.sendto(data, (peer.host, peer.port))
            except OSError as e:
                log.debug("udp send to %s failed: %s", peer, e)
            return
        conn = self.tcp.get((peer.host, peer.port))
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            return
        key = (peer.host, peer.port)
        if key in self._pending:
            self._pending[key].append(data)
            return
        self._pending[key] = [data]
        asyncio.get_running_loop().create_task(self._connect(key))

    async def _connect(self, key: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _TcpProtocol(self), key[0], key[1]), 5.0)
        except (TimeoutError, OSError) as e:
            log.info("cannot connect to %s:%s over TCP: %s", key[0], key[1], e)
            self._pending.pop(key, None)
            return
        for data in self._pending.pop(key, []):
            assert proto.transport is not None
            proto.transport.write(data)

    def udp_fileno(self) -> int:
        """The UDP socket's descriptor, for SIP worker processes that read it too."""
        if self._udp_sock is None:
            raise RuntimeError("the SIP transport is not started")
        return self._udp_sock.fileno()

    @property
    def local_port(self) -> int:
        return self.port

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for conn in list(self.tcp.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
