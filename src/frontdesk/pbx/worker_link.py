"""The link between the main process and one SIP worker process (``serve --sip-workers``).

One AF_UNIX datagram socket pair per worker: datagrams keep message boundaries and order,
and nothing outside the two processes can reach them. Each datagram is one message, a kind
byte then its payload:

``M`` a REGISTER received from the network, to be handled by the receiver: target byte
  (main -> worker: ``ROUTE``, the worker checks the parsed To; worker -> main: the index
  of the process that owns it, which handles it without forwarding it again), then the peer
  it came from, then the bytes;
``S`` bytes the receiver must send to a peer (a worker answering a REGISTER that came over
  one of the main process's TCP connections);
``B`` a binding change (``upsert``/``delete``) of an address-of-record the sender owns;
``F`` a failed authentication from a source address (worker -> main: the main process's
  guard counts them for all processes);
``K`` block a source address for some seconds (main -> workers);
``R`` reload the configuration from the database (main -> workers);
``T`` the worker's SIP counters (worker -> main, for /health);
``Y`` the worker is ready (worker -> main); ``Z`` its bindings are handed over (main ->
  worker).

Sends never block the event loop: a full socket buffer queues the message and a writer
callback flushes the queue; beyond ``MAX_QUEUED`` queued messages SIP messages are dropped
(UDP semantics: the phone retransmits) but binding changes never are.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import pickle
import socket
import struct
from collections.abc import Callable, Mapping

from frontdesk.pbx.location import Binding
from frontdesk.sip.peer import Peer

log = logging.getLogger("frontdesk.workers")

ROUTE = 0xFF
MAX_QUEUED = 50_000
READ_BATCH = 64
_MAX_FRAME = 65536 + 512  # a SIP message (at most 65,535 bytes) and its peer header
_BUFFER = 8 * 1024 * 1024
_TRANSPORT_CODE = {"udp": b"u", "tcp": b"t", "tls": b"s", "ws": b"w", "wss": b"x"}
_CODE_TRANSPORT = {v[0]: k for k, v in _TRANSPORT_CODE.items()}
_PEER_HEAD = struct.Struct("!BcHB")  # target, transport, port, host length


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of datagram sockets with large buffers (main end, worker end)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (a, b):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):  # capped by the kernel: the queue covers it
                s.setsockopt(socket.SOL_SOCKET, opt, _BUFFER)
    return a, b


def encode_message(kind: bytes, target: int, peer: Peer, data: bytes) -> bytes:
    host = peer.host.encode()
    return kind + _PEER_HEAD.pack(target, _TRANSPORT_CODE[peer.transport], peer.port,
                                  len(host)) + host + data


def decode_message(frame: bytes) -> tuple[int, Peer, bytes]:
    """(target, peer, data) of an ``M`` or ``S`` frame."""
    target, code, port, hlen = _PEER_HEAD.unpack_from(frame, 1)
    start = 1 + _PEER_HEAD.size
    host = frame[start:start + hlen].decode()
    return target, Peer(_CODE_TRANSPORT[code[0]], host, port), frame[start + hlen:]


def encode_binding(kind: str, binding: Binding) -> bytes:
    b = binding
    fields = (kind, b.tenant_id, b.aor, b.contact_uri, b.peer.transport, b.peer.host,
              b.peer.port, b.expires_at, b.call_id, b.cseq, b.user_agent, b.instance_id,
              b.reg_id, b.path, b.reachable)
    return b"B" + pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)


def decode_binding(frame: bytes) -> tuple[str, Binding]:
    (kind, tenant_id, aor, contact_uri, transport, host, port, expires_at, call_id, cseq,
     user_agent, instance_id, reg_id, path, reachable) = pickle.loads(frame[1:])
    return kind, Binding(tenant_id=tenant_id, aor=aor, contact_uri=contact_uri,
                         peer=Peer(transport, host, port), expires_at=expires_at,
                         call_id=call_id, cseq=cseq, user_agent=user_agent,
                         instance_id=instance_id, reg_id=reg_id, path=path, reachable=reachable)


def encode_block(source: str, seconds: float) -> bytes:
    return b"K" + pickle.dumps((source, seconds))


def decode_block(frame: bytes) -> tuple[str, float]:
    source, seconds = pickle.loads(frame[1:])
    return str(source), float(seconds)


def encode_stats(stats: Mapping[str, int]) -> bytes:
    return b"T" + pickle.dumps(dict(stats))


def decode_stats(frame: bytes) -> dict[str, int]:
    return {str(k): int(v) for k, v in pickle.loads(frame[1:]).items()}


class Link:
    """One end of a worker link on the running event loop."""

    def __init__(self, sock: socket.socket, on_frame: Callable[[bytes], None],
                 on_closed: Callable[[], None] | None = None) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.on_frame = on_frame
        self.on_closed = on_closed
        self.dropped = 0
        self.closed = False
        self._queue: collections.deque[bytes] = collections.deque()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        recv = self.sock.recv
        for _ in range(READ_BATCH):
            try:
                frame = recv(_MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._lost(e)
                return
            if not frame:
                continue
            try:
                self.on_frame(frame)
            except Exception:  # a bug of ours: contain it, keep the link
                log.exception("internal error handling a worker link message %r", frame[:1])

    def send(self, frame: bytes, droppable: bool = False) -> None:
        if self.closed:
            return
        if self._queue:
            self._enqueue(frame, droppable)
            return
        try:
            self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            self._enqueue(frame, droppable)
            self._loop.add_writer(self.sock.fileno(), self._flush)
        except OSError as e:
            self._lost(e)

    def pending_frames(self) -> int:
        """Messages queued because the other end's buffer was full."""
        return len(self._queue)

    def _enqueue(self, frame: bytes, droppable: bool) -> None:
        if droppable and len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queue.append(frame)

    def _flush(self) -> None:
        while self._queue:
            try:
                self.sock.send(self._queue[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._lost(e)
                return
            self._queue.popleft()
        self._loop.remove_writer(self.sock.fileno())

    def _lost(self, e: OSError) -> None:
        if self.closed:
            return
        log.debug("worker link closed: %s", e)
        self.close()
        if self.on_closed is not None:
            self.on_closed()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        fd = self.sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        self._queue.clear()
        self.sock.close()
