"""A SIP engine with its media endpoint on a real event loop, and soft phones that talk SIP
to it through memory and RTP over loopback (our own RtpStream as the phone's media).

What it is for: endpoint, voicemail and menu tests without external peers — every SIP
message the phone gets is parsed and kept; audio the phone hears is collected as PCM.

What it must never do: bind outside 127.0.0.1, or wait without a bound.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from frontdesk.media.clock import MediaClock
from frontdesk.media.rtp import PortRange, RtpStream, StreamParams
from frontdesk.pbx.directory import Credential, Directory, ExtensionInfo, TenantInfo
from frontdesk.pbx.endpoint import MediaEndpoint
from frontdesk.pbx.engine import SipEngine
from frontdesk.pbx.location import LocationService
from frontdesk.sip.message import Request, Response, parse_message
from frontdesk.sip.peer import Peer
from frontdesk.store.repo import compute_ha1

DOMAIN = "acme.test"
_seq = itertools.count(1)


def directory(
    numbers: dict[str, str], trusted: bool = True, ring_timeout: float = 5.0
) -> Directory:
    d = Directory()
    t = TenantInfo(1, "acme", "Acme", DOMAIN, True, ring_timeout, trusted)
    d.tenants[1] = t
    d.by_domain[DOMAIN] = t
    d.default = t
    for number, name in numbers.items():
        d.extensions[(1, number)] = ExtensionInfo(1, number, name, ring_timeout, 5)
        ha1 = compute_ha1(number, DOMAIN, "pw" + number)
        d.credentials[(1, number)] = Credential(1, number, number, ha1.md5, ha1.sha256)
    return d


class Rig:
    def __init__(self, numbers: dict[str, str] | None = None, trusted: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self.cdrs: list[dict[str, Any]] = []
        self.location = LocationService()
        self.engine = SipEngine(
            directory(numbers or {"101": "Office Manager"}, trusted),
            self.location,
            via_host="127.0.0.1:5060",
            secret=b"0123456789abcdef0123456789abcdef",
            cdr_sink=self.cdrs.append,
        )
        self.clock = MediaClock()
        self.endpoint = MediaEndpoint(
            self.engine,
            media_host="127.0.0.1",
            ports=PortRange("127.0.0.1", 0, 0),
            clock=self.clock,
            no_media_seconds=3.0,
        ).attach()
        self.endpoint.wakeup = self.flush
        self.inbox: dict[int, list[Request | Response]] = {}
        self._timer = self.loop.create_task(self._timers())

    def now(self) -> float:
        return self.loop.time()

    def send(self, message: Request | Response | bytes, source: Peer) -> None:
        data = message if isinstance(message, bytes) else bytes(message)
        self.engine.receive(data, source, self.now())
        self.flush()

    def flush(self) -> None:
        for data, peer in self.engine.drain():
            self.inbox.setdefault(peer.port, []).append(parse_message(data))

    async def _timers(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= self.now():
                self.engine.on_timer(self.now())
                self.flush()

    async def close(self) -> None:
        await self.endpoint.close()
        self._timer.cancel()


SDP = (
    "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP {fmts}\r\n{maps}a=sendrecv\r\n"
)
MAPS = {
    "0": "a=rtpmap:0 PCMU/8000\r\n",
    "8": "a=rtpmap:8 PCMA/8000\r\n",
    "101": "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
    "18": "a=rtpmap:18 G729/8000\r\n",
    "9": "a=rtpmap:9 G722/8000\r\n",
}


class SoftPhone:
    """A phone at 127.0.0.1:``port`` (SIP through the rig, RTP over a real socket)."""

    def __init__(self, rig: Rig, number: str, port: int, formats: str = "0 8 101") -> None:
        self.rig = rig
        self.number = number
        self.peer = Peer("udp", "127.0.0.1", port)
        self.formats = formats
        self.sockets = PortRange("127.0.0.1", 0, 0).bind_pair()
        self.rtp_port = int(self.sockets[0].getsockname()[1])
        self.stream: RtpStream | None = None
        self.heard = bytearray()
        self.invite: Request | None = None
        self.answer: Response | None = None
        self.cseq = 1

    @property
    def messages(self) -> list[Request | Response]:
        return self.rig.inbox.setdefault(self.peer.port, [])

    def sdp(self) -> bytes:
        fmts = self.formats.split()
        return SDP.format(
            port=self.rtp_port, fmts=" ".join(fmts), maps="".join(MAPS.get(f, "") for f in fmts)
        ).encode()

    def call(self, target: str, body: bytes | None = None) -> Request:
        n = next(_seq)
        body = self.sdp() if body is None else body
        head = (
            f"INVITE sip:{target}@{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.peer.port};branch=z9hG4bKph{n};rport\r\n"
            f'Max-Forwards: 70\r\nFrom: "Phone {self.number}" <sip:{self.number}@{DOMAIN}>'
            f";tag=ph{n}\r\nTo: <sip:{target}@{DOMAIN}>\r\nCall-ID: call-{n}@phone\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:{self.number}@127.0.0.1:{self.peer.port}>\r\n"
        )
        if body:
            head += "Content-Type: application/sdp\r\n"
        raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.invite = parse_message(raw)  # type: ignore[assignment]
        self.rig.send(raw, self.peer)
        return self.invite  # type: ignore[return-value]

    def final(self) -> Response | None:
        for m in self.messages:
            if isinstance(m, Response) and m.status >= 200 and m.cseq.method == "INVITE":
                return m
        return None

    async def connect(self, target: str, wait: float = 2.0) -> Response:
        """Call ``target``; on 200 send ACK and start our RTP. Returns the final response."""
        self.call(target)
        resp = await self.wait_for(lambda: self.final(), wait)
        if resp.status == 200:
            self.ack(resp)
            await self.start_media(resp)
        return resp

    def ack(self, resp: Response, body: bytes = b"") -> None:
        assert self.invite is not None
        n = next(_seq)
        to = resp.headers.get("To")
        raw = (
            f"ACK {self.invite.uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.peer.port};"
            f"branch=z9hG4bKack{n};rport\r\nMax-Forwards: 70\r\n"
            f"From: {self.invite.headers.get('From')}\r\nTo: {to}\r\n"
            f"Call-ID: {self.invite.call_id}\r\nCSeq: 1 ACK\r\n"
        )
        if body:
            raw += "Content-Type: application/sdp\r\n"
        self.answer = resp
        self.rig.send((raw + f"Content-Length: {len(body)}\r\n\r\n").encode() + body, self.peer)

    async def start_media(self, resp: Response, sdp_of: bytes | None = None) -> RtpStream:
        from frontdesk.media.negotiate import params_from_answer

        params = params_from_answer(sdp_of or resp.body)
        ours = StreamParams(
            params.codec, params.payload_type, params.dtmf_payload_type, params.remote
        )
        self.stream = RtpStream(ours, self.rig.clock, f"phone {self.number}", self.sockets)
        self.stream.on_audio = lambda pcm, ts: self.heard.extend(pcm)
        await self.stream.start()
        return self.stream

    def in_dialog(
        self, method: str, body: bytes = b"", ctype: str | None = None, extra: str = ""
    ) -> None:
        assert self.invite is not None and self.answer is not None
        self.cseq += 1
        n = next(_seq)
        raw = (
            f"{method} sip:frontdesk@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.peer.port};branch=z9hG4bKin{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {self.invite.headers.get('From')}\r\n"
            f"To: {self.answer.headers.get('To')}\r\nCall-ID: {self.invite.call_id}\r\n"
            f"CSeq: {self.cseq} {method}\r\n"
        )
        if ctype:
            raw += f"Content-Type: {ctype}\r\n"
        raw += extra
        self.rig.send((raw + f"Content-Length: {len(body)}\r\n\r\n").encode() + body, self.peer)

    def hangup(self) -> None:
        self.in_dialog("BYE")

    def requests(self, method: str) -> list[Request]:
        return [m for m in self.messages if isinstance(m, Request) and m.method == method]

    def answer_request(self, req: Request, status: int = 200) -> None:
        from frontdesk.sip.message import make_response

        self.rig.send(make_response(req, status), self.peer)

    async def wait_for(self, check: Callable[[], Any], timeout: float = 2.0) -> Any:
        deadline = self.rig.now() + timeout
        while True:
            value = check()
            if value:
                return value
            if self.rig.now() > deadline:
                got = [bytes(m).split(b"\r\n")[0] for m in self.messages]
                raise AssertionError(
                    f"phone {self.number}: condition not met in {timeout}s; got {got}"
                )
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
        else:
            for sock in self.sockets:
                sock.close()


def configure(db: Any, *changes: Any, tenant_id: int = 1) -> list[Any]:
    """Voicemail setup through the one change path (``org.service``) as the local
    administrator, like the CLI: ``configure(db, Change("mailbox", "create", "102", {...}))``."""
    from frontdesk.org.access import Actor
    from frontdesk.org.service import apply_change

    with db.session() as session:
        return [apply_change(session, Actor.local_admin(tenant_id), "cli", c) for c in changes]
