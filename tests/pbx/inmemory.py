"""Phones and a SIP engine wired together in memory (STYLE #6): no sockets, time by hand.

`Net` owns a `SipEngine` on a fresh SQLite directory snapshot; `Phone` builds requests and
responses as a real UA would and reads what the engine sent it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from frontdesk.pbx.directory import Credential, Directory, ExtensionInfo, TenantInfo
from frontdesk.pbx.engine import SipEngine
from frontdesk.pbx.location import LocationService
from frontdesk.sip.auth import build_authorization
from frontdesk.sip.message import Request, Response, make_response, parse_message
from frontdesk.sip.peer import Peer
from frontdesk.store.repo import compute_ha1

DOMAIN = "acme.test"
_seq = itertools.count(1)

SDP_A = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = b"v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n"


def with_main_number(directory: Directory, number: str = "100") -> None:
    """Tenant 1 of ``directory`` gets ``number`` as its main number (calls to it walk the
    tenant's call flow)."""
    tenant = dataclasses.replace(directory.tenants[1], main_number=number)
    directory.tenants[1] = directory.by_domain[tenant.sip_domain] = directory.default = tenant


def make_directory(extensions: dict[str, str], ring_timeout: float = 20.0,
                   trusted_loopback: bool = False) -> Directory:
    d = Directory()
    t = TenantInfo(1, "acme", "Acme", DOMAIN, True, ring_timeout, trusted_loopback)
    d.tenants[1] = t
    d.by_domain[DOMAIN] = t
    d.default = t
    for number, password in extensions.items():
        d.extensions[(1, number)] = ExtensionInfo(1, number, f"User {number}", ring_timeout, 5)
        ha1 = compute_ha1(number, DOMAIN, password)
        d.credentials[(1, number)] = Credential(1, number, number, ha1.md5, ha1.sha256)
    return d


@dataclass
class Net:
    directory: Directory
    now: float = 1000.0
    cdrs: list[dict[str, Any]] = field(default_factory=list)
    bindings: list[tuple[str, Any]] = field(default_factory=list)
    inbox: dict[int, list[Request | Response]] = field(default_factory=dict)
    raw: dict[int, list[bytes]] = field(default_factory=dict)
    wall_offset: float = 0.0

    def __post_init__(self) -> None:
        self.location = LocationService(lambda kind, b: self.bindings.append((kind, b)))
        self.engine = SipEngine(self.directory, self.location, via_host="127.0.0.1:5060",
                                secret=b"0123456789abcdef0123456789abcdef",
                                cdr_sink=self.cdrs.append, wall_offset=self.wall_offset)
        self.engine.qualifier.start(self.now)

    def send(self, message: Request | Response | bytes, source: Peer) -> None:
        data = message if isinstance(message, bytes) else bytes(message)
        self.engine.receive(data, source, self.now)
        self.deliver()

    def deliver(self) -> None:
        for data, peer in self.engine.drain():
            self.raw.setdefault(peer.port, []).append(data)
            self.inbox.setdefault(peer.port, []).append(parse_message(data))

    def advance(self, seconds: float, step: float = 0.25) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= self.now:
                self.engine.on_timer(self.now)
                self.deliver()


class Phone:
    def __init__(self, net: Net, number: str, password: str, port: int,
                 transport: str = "udp") -> None:
        self.net = net
        self.number = number
        self.password = password
        self.peer = Peer(transport, "127.0.0.1", port)
        self.cseq = 0
        self.tag = f"tag{number}{port}"

    # --- what the engine sent us ------------------------------------------------------
    def received(self) -> list[Request | Response]:
        return self.net.inbox.get(self.peer.port, [])

    def take(self) -> list[Request | Response]:
        msgs = self.net.inbox.pop(self.peer.port, [])
        return msgs

    def last(self, kind: type | None = None, method: str | None = None,
             status: int | None = None) -> Any:
        for m in reversed(self.received()):
            if kind is not None and not isinstance(m, kind):
                continue
            if method is not None and (not isinstance(m, Request) or m.method != method):
                continue
            if status is not None and (not isinstance(m, Response) or m.status != status):
                continue
            return m
        return None

    # --- building requests ------------------------------------------------------------
    def request(self, method: str, to_user: str, call_id: str | None = None, body: bytes = b"",
                cseq: int | None = None, to_tag: str | None = None,
                branch: str | None = None) -> Request:
        self.cseq = cseq if cseq is not None else self.cseq + 1
        branch = branch or f"z9hG4bK{self.number}x{next(_seq)}"
        to = f"<sip:{to_user}@{DOMAIN}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} sip:{to_user}@{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/{self.peer.transport.upper()} 127.0.0.1:{self.peer.port};branch={branch};rport",
            f"From: \"Phone {self.number}\" <sip:{self.number}@{DOMAIN}>;tag={self.tag}",
            f"To: {to}",
            f"Call-ID: {call_id or f'call-{self.number}-{next(_seq)}'}",
            f"CSeq: {self.cseq} {method}",
            f"Contact: <sip:{self.number}@127.0.0.1:{self.peer.port}>",
            "Max-Forwards: 70",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def authorize(self, req: Request, challenge: Response) -> Request:
        header = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        target = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
        value = challenge.headers.get_all(header)[-1]  # MD5 (the second offer)
        req.headers.add(target, build_authorization(value, req.method, req.uri, self.number,
                                                    self.password, cnonce="c0ffee", nc=1))
        self.cseq += 1
        req.headers.set("CSeq", f"{self.cseq} {req.method}")
        via = req.headers.get("Via") or ""
        req.headers.set("Via", via.replace("branch=", "branch=z9hG4bKauth"))
        return req

    def register(self, expires: int = 3600) -> Response:
        req = self.request("REGISTER", self.number)
        req.headers.add("Expires", str(expires))
        self.net.send(req, self.peer)
        challenge = self.last(Response)
        assert challenge is not None and challenge.status == 401, challenge
        self.net.send(self.authorize(req, challenge), self.peer)
        return self.last(Response)  # type: ignore[no-any-return]

    def invite(self, to_user: str, body: bytes = SDP_A) -> Request:
        req = self.request("INVITE", to_user, body=body)
        self.net.send(req, self.peer)
        challenge = self.last(Response, status=407)
        assert challenge is not None, self.received()
        ack = Request("ACK", req.uri, req.headers.copy())
        ack.headers.set("CSeq", f"{req.cseq.number} ACK")
        ack.headers.set("To", challenge.headers.get("To") or "")
        ack.body = b""
        ack.headers.remove("Content-Type")
        self.net.send(ack, self.peer)
        req = self.authorize(req, challenge)
        self.net.send(req, self.peer)
        return req

    def respond(self, req: Request, status: int, body: bytes = b"", tag: str | None = None) -> Response:
        resp = make_response(req, status, to_tag=tag or self.tag)
        resp.headers.add("Contact", f"<sip:{self.number}@127.0.0.1:{self.peer.port}>")
        if body:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = body
        self.net.send(resp, self.peer)
        return resp

    def in_dialog(self, method: str, dialog_from: Request | Response, remote_tag: str,
                  remote_uri: str, call_id: str, cseq: int) -> Request:
        """A request inside a dialog (we are the UA that owns ``self.tag``)."""
        lines = [
            f"{method} {remote_uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.peer.port};branch=z9hG4bK{self.number}d{next(_seq)};rport",
            f"From: <sip:{self.number}@{DOMAIN}>;tag={self.tag}",
            f"To: <sip:x@{DOMAIN}>;tag={remote_tag}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
        return parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
