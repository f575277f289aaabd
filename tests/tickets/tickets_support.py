"""Helpers shared by the tickets tests: the seeded tenant's ids and a real HTTP receiver
that records what arrives (webhooks, Zammad CTI events).

What it must never do: listen anywhere but 127.0.0.1.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy.orm import Session

from frontdesk.org.credentials import new_token
from frontdesk.org.model import ApiToken


def api_token(s: Session, tenant_id: int, user_id: int) -> str:
    """A new API token for the user, stored (hashed) in ``s``: the bearer token."""
    token, digest = new_token()
    s.add(ApiToken(tenant_id=tenant_id, user_id=user_id, name="t", kind="api", token_hash=digest))
    return token


@dataclass
class Acme:
    """The seeded tenant: ids of its co-workers (with extensions 101-104)."""

    tenant_id: int
    receptionist: int
    service_manager: int
    tech_tom: int
    tech_tina: int


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP server; answers with ``statuses`` in turn (then 200) and records every
    request it got."""

    url: str
    received: list[ReceivedRequest] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200


class ReceiverServer(ThreadingHTTPServer):
    receiver: Receiver


class RequestHandler(BaseHTTPRequestHandler):
    server: ReceiverServer

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        status = receiver.next_status()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with receiver.lock:
            receiver.received.append(ReceivedRequest(self.path, headers, body))
        receiver.arrived.set()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return
