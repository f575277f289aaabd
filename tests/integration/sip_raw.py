"""Raw SIP over sockets for black-box tests of the real server: send exact bytes (RFC 4475
torture messages, scanner probes) over UDP or TCP and read back what the server answers.

What it is for: a UDP or TCP client bound to 127.0.0.1 that sends bytes as given (TCP
whole, or one byte per write), collects the responses for a time window and splits them
into messages; a small response parser independent of ``frontdesk.sip`` (so a parser bug
cannot hide itself); building plain requests; computing an RFC 2617/7616 MD5 digest
answer; and the RFC 4475 message folder.

What it must never do: bind outside 127.0.0.1, wait without a bound, or import the code
under test to judge its own output.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import select
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


# --- RFC 4475 messages -------------------------------------------------------------------
def rfc4475_dir() -> Path:
    """shared/conformance/rfc4475 beside the repository (FRONTDESK_SHARED overrides)."""
    env = os.environ.get("FRONTDESK_SHARED")
    here = Path(__file__).resolve()
    candidates = [Path(env)] if env else []
    candidates += [parent / "shared" for parent in here.parents]
    candidates += [parent / ".." / "shared" for parent in here.parents]
    for shared in candidates:
        folder = shared / "conformance" / "rfc4475"
        if (folder / "MANIFEST.md").is_file():
            return folder.resolve()
    raise FileNotFoundError(
        "RFC 4475 messages not found: expected shared/conformance/rfc4475/MANIFEST.md beside "
        "the repository (e.g. /work/shared next to /work/main) or under FRONTDESK_SHARED")


def load_rfc4475(name: str) -> bytes:
    return (rfc4475_dir() / f"{name}.dat").read_bytes()


# --- responses ---------------------------------------------------------------------------
@dataclass
class SipResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def get(self, name: str) -> str | None:
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def call_id(self) -> str | None:
        return self.get("Call-ID")

    @property
    def cseq_method(self) -> str:
        return (self.get("CSeq") or " ").split()[-1]

    def __repr__(self) -> str:
        return f"<{self.status} {self.reason!r} CSeq={self.get('CSeq')!r}>"


class NotAResponse(ValueError):
    """The server sent bytes that are not a SIP response (a bug worth reporting)."""


def parse_response(raw: bytes) -> SipResponse:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise NotAResponse(f"no end of headers in {raw[:200]!r}")
    lines = head.decode("utf-8", "replace").split("\r\n")
    match = re.fullmatch(r"SIP/2\.0 (\d{3}) (.*)", lines[0])
    if match is None:
        raise NotAResponse(f"bad status line {lines[0]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise NotAResponse(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return SipResponse(int(match.group(1)), match.group(2), headers, body, raw)


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete messages at the start of a stream buffer (framed by Content-Length)."""
    messages = []
    while True:
        buffer = buffer.lstrip(b"\r\n")
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return messages, buffer
        length = 0
        for line in buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value.strip() or b"0")
        total = end + 4 + length
        if len(buffer) < total:
            return messages, buffer
        messages.append(buffer[:total])
        buffer = buffer[total:]


@dataclass
class Exchange:
    """What came back for what was sent: responses, and (TCP) whether the server closed."""

    responses: list[SipResponse] = field(default_factory=list)
    closed: bool = False
    leftover: bytes = b""

    @property
    def finals(self) -> list[SipResponse]:
        return [r for r in self.responses if r.status >= 200]

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]


class UdpClient:
    """One UDP socket on 127.0.0.1 (an OS-chosen port) talking to the server."""

    def __init__(self, port: int) -> None:
        self.server = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.local_port: int = self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def collect(self, window: float, *, until_final: bool = False,
                quiet_after_final: float = 0.15) -> Exchange:
        """Read datagrams for up to ``window`` s (or until a final response, plus a short
        quiet period to catch anything sent right after it)."""
        ex = Exchange()
        deadline = time.monotonic() + window
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ex
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return ex
            data = self.sock.recv(65535)
            ex.responses.append(parse_response(data))
            if until_final and ex.finals:
                deadline = min(deadline, time.monotonic() + quiet_after_final)

    def read_ready(self) -> Exchange:
        """Read what one readable-socket event brings (call after select said readable)."""
        return Exchange([parse_response(self.sock.recv(65535))])

    def request(self, data: bytes, window: float = 3.0) -> Exchange:
        self.send(data)
        return self.collect(window, until_final=True)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpClient:
    """One TCP connection from 127.0.0.1 to the server."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_port: int = self.sock.getsockname()[1]
        self.buffer = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        """Write it all; if the server has closed the connection meanwhile, note that."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def send_bytewise(self, data: bytes) -> None:
        """Each octet in its own write (TCP_NODELAY: mostly its own segment too); stops
        when the server closes the connection (it may, on a framing error)."""
        for i in range(len(data)):
            try:
                self.sock.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                self.closed = True
                return

    def read_ready(self) -> Exchange:
        """Read what one readable-socket event brings (call after select said readable)."""
        try:
            data = self.sock.recv(65535)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
        self.buffer += data
        messages, self.buffer = split_stream(self.buffer)
        return Exchange([parse_response(m) for m in messages], self.closed, self.buffer)

    def collect(self, window: float, *, until_final: bool = False,
                quiet_after_final: float = 0.15) -> Exchange:
        ex = Exchange()
        deadline = time.monotonic() + window
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                break
            ex.responses += self.read_ready().responses
            if until_final and ex.finals:
                deadline = min(deadline, time.monotonic() + quiet_after_final)
        ex.closed = self.closed
        ex.leftover = self.buffer
        return ex

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TcpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- requests ----------------------------------------------------------------------------
def branch() -> str:
    return f"z9hG4bK-{secrets.token_hex(8)}"


def build_request(method: str, ruri: str, *, local_port: int, to: str, from_: str,
                  transport: str = "UDP", cseq: int = 1, call_id: str | None = None,
                  from_tag: str | None = None, extra: list[tuple[str, str]] | None = None,
                  body: bytes = b"") -> bytes:
    """A plain request from 127.0.0.1:local_port, like a phone or a scanner would send."""
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {HOST}:{local_port};branch={branch()};rport",
        "Max-Forwards: 70",
        f"From: <{from_}>;tag={from_tag or secrets.token_hex(4)}",
        f"To: <{to}>",
        f"Call-ID: {call_id or secrets.token_hex(10)}@{HOST}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:probe@{HOST}:{local_port}>",
    ]
    lines += [f"{name}: {value}" for name, value in extra or []]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


SDP = (b"v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


# --- digest ------------------------------------------------------------------------------
def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme.lower() == "digest", value
    return {k.lower(): v1 if v1 else v2 for k, v1, v2 in
            re.findall(r'([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest)}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_answer(challenge: str, *, method: str, uri: str, user: str, password: str,
                  nc: int = 1) -> str:
    """The Authorization / Proxy-Authorization value answering an MD5 ``challenge``."""
    c = parse_challenge(challenge)
    assert c.get("algorithm", "MD5").upper() == "MD5", f"test client does MD5 only: {challenge}"
    ha1 = _md5(f"{user}:{c['realm']}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{c["realm"]}"', f'nonce="{c["nonce"]}"',
             f'uri="{uri}"', "algorithm=MD5"]
    if "qop" in c:
        cnonce = secrets.token_hex(8)
        ncs = f"{nc:08x}"
        response = _md5(f"{ha1}:{c['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
        parts += [f'cnonce="{cnonce}"', f"nc={ncs}", "qop=auth"]
    else:
        response = _md5(f"{ha1}:{c['nonce']}:{ha2}")
    parts.append(f'response="{response}"')
    if "opaque" in c:
        parts.append(f'opaque="{c["opaque"]}"')
    return "Digest " + ", ".join(parts)


# --- ports -------------------------------------------------------------------------------
def _listening(port: int, table: str, state: str | None) -> bool:
    try:
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        local, st = fields[1], fields[3]
        if int(local.rsplit(":", 1)[1], 16) == port and (state is None or st == state):
            return True
    return False


def wait_bound(port: int, transport: str, timeout: float = 10.0) -> bool:
    """Wait until something listens on 127.0.0.1:``port`` (UDP bound, or TCP LISTEN)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if transport == "udp" and _listening(port, "udp", None):
            return True
        if transport == "tcp" and _listening(port, "tcp", "0A"):
            return True
        time.sleep(0.05)
    return False
