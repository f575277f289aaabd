"""Free loopback ports for real-peer tests.

What it is for: hand out UDP/TCP ports on 127.0.0.1 that nothing is bound to right now,
never the same port twice in one test process (so two phones created back to back do not
get the same port before either has bound it).

What it must never do: bind outside 127.0.0.1, or promise a port stays free (another
process may take it between the check and the use; callers that start a peer retry on
"address in use").

RTP ranges come from the test-infra block 20000-20999 (docs/TEAM-NOTES.md), single ports
from 21000-32699 (below the kernel's ephemeral ports, so no outgoing connection takes one);
under pytest-xdist each worker gets its own share of both blocks.
"""

from __future__ import annotations

import os
import random
import socket
import threading

HOST = "127.0.0.1"
RTP_BLOCK_ALL = (20000, 20999)


def _worker_block(block: tuple[int, int], worker: str | None) -> tuple[int, int]:
    """This pytest-xdist worker's share of ``block`` (worker "gw<i>" of
    PYTEST_XDIST_WORKER_COUNT), so parallel workers never pick the same RTP ports; the whole
    block without xdist."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker or not worker.startswith("gw") or count <= 1:
        return block
    index = int(worker[2:]) % count
    size = (block[1] - block[0] + 1) // count
    low = block[0] + index * size
    return low, low + size - 1


RTP_BLOCK = _worker_block(RTP_BLOCK_ALL, os.environ.get("PYTEST_XDIST_WORKER"))
#: single ports (SIP, HTTP, control): below Linux's default ephemeral range (32768-60999)
PORT_BLOCK_ALL = (21000, 32699)
PORT_BLOCK = _worker_block(PORT_BLOCK_ALL, os.environ.get("PYTEST_XDIST_WORKER"))

_handed_out: set[int] = set()
_lock = threading.Lock()


def _can_bind(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_is_free(port: int, udp: bool = True, tcp: bool = False) -> bool:
    """True if ``port`` can be bound on 127.0.0.1 now (UDP and/or TCP) and was not handed out."""
    if port in _handed_out or not 1024 <= port <= 65535:
        return False
    if udp and not _can_bind(port, socket.SOCK_DGRAM):
        return False
    return not (tcp and not _can_bind(port, socket.SOCK_STREAM))


def free_port(udp: bool = True, tcp: bool = False, following: int = 0) -> int:
    """A port free for UDP and/or TCP; ``following`` more ports after it must be free too.

    Example: ``free_port(udp=True, tcp=True, following=1)`` gives a baresip ``sip_listen``
    port P (baresip binds UDP P, TCP P and TLS on TCP P+1).

    Ports come from this worker's share of PORT_BLOCK, below the kernel's ephemeral range:
    a port the OS handed out (bind to port 0) and we closed could be taken by another
    process's outgoing connection, or another xdist worker, before the peer binds it.
    """
    low, high = PORT_BLOCK
    for _ in range(500):
        base = random.randint(low, high - following)
        ports = range(base, base + following + 1)
        with _lock:
            if all(port_is_free(p, udp=udp, tcp=tcp) for p in ports):
                _handed_out.update(ports)
                return base
    raise RuntimeError(f"no free loopback port in {low}-{high} after 500 tries")


def free_udp_port() -> int:
    """One free UDP port on 127.0.0.1."""
    return free_port(udp=True)


def free_tcp_port() -> int:
    """One free TCP port on 127.0.0.1."""
    return free_port(udp=False, tcp=True)


def free_rtp_range(count: int = 10) -> tuple[int, int]:
    """``count`` consecutive free UDP ports (even start) inside the test-infra RTP block."""
    low, high = RTP_BLOCK
    starts = list(range(low, high - count + 2, 2))
    random.shuffle(starts)
    with _lock:
        for start in starts:
            ports = range(start, start + count)
            if all(port_is_free(p, udp=True) for p in ports):
                _handed_out.update(ports)
                return start, start + count - 1
    raise RuntimeError(f"no {count} free consecutive UDP ports in {low}-{high}")


def release(*ports: int) -> None:
    """Allow ports to be handed out again (after the peer that used them has exited)."""
    with _lock:
        _handed_out.difference_update(ports)
