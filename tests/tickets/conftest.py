"""Fixtures for the tickets tests: every DB test runs on SQLite and PostgreSQL (the store's
``db_url`` fixture), a seeded tenant "acme" with co-workers, and a real HTTP receiver on
127.0.0.1 that records what webhooks and Zammad CTI events arrive.

What it must never do: reach beyond 127.0.0.1, or leave a server thread running after the
test that started it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from store.conftest import db_url, open_db, pg_server_url  # noqa: F401  (fixtures)

from frontdesk.store import repo
from frontdesk.store.db import Database


@dataclass
class Acme:
    """The seeded tenant: ids of its co-workers (with extensions 101-104)."""

    tenant_id: int
    receptionist: int
    service_manager: int
    tech_tom: int
    tech_tina: int


@pytest.fixture
def db(db_url: str, open_db: Callable[[str], Database]) -> Database:  # noqa: F811
    database = open_db(db_url)
    database.migrate()
    return database


@pytest.fixture
def acme(db: Database) -> Acme:
    with db.session() as s:
        tenant = repo.create_tenant(s, "acme", "Acme IT Services", "acme.example")
        ids = []
        for number, name in (
            ("101", "Rita Reception"),
            ("102", "Sam Service-Manager"),
            ("103", "Tom Technician"),
            ("104", "Tina Technician"),
        ):
            user, _, _ = repo.create_user_with_extension(
                s, tenant, number, name, "pw", username=name.split()[0].lower(),
                email=f"{name.split()[0].lower()}@acme.example",
            )
            ids.append(user.id)
        return Acme(tenant.id, *ids)


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


class _ReceiverServer(ThreadingHTTPServer):
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _ReceiverServer

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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 (OS-assigned port)."""
    server = _ReceiverServer(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
