"""What the live tickets tests (test_tickets_live.py) share: a real `frontdesk serve` with
the demo tenant seeded for service requests on calls (a known caller with an open request,
webhook endpoints, API tokens), a real HTTP receiver, a real WebSocket client, and readers
of what the server stored.

What it must never do: listen anywhere but 127.0.0.1, or leave a server or thread running
after the test that started it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import database, registered_baresip, wait_for
from sqlalchemy import select
from websockets.sync.client import ClientConnection, connect

from frontdesk.org.credentials import new_token
from frontdesk.org.model import ApiToken, PermissionOverride
from frontdesk.store import repo
from frontdesk.store.models import Cdr, Extension
from frontdesk.tickets import calls as ticket_calls
from frontdesk.tickets import directory, endpoints, service, zammad
from frontdesk.tickets.actor import SYSTEM
from frontdesk.tickets.model import RequestNote, ServiceRequest, WebhookDelivery, WebhookEndpoint
from peers import BaresipPhone, silence_wav, speech_wav
from peers.audio import concat_wavs
from tickets.tickets_support import Receiver, ReceiverServer, RequestHandler

OUTSIDE = "+12125550100"
STRANGER = "+13125550142"
SECRET = "live-test-secret-0123456789"
RETRIES = 3
ENV = {
    "FRONTDESK_RTP_PORTS": "0",
    "FRONTDESK_MEDIA_TIMEOUT": "5",
    "FRONTDESK_WEBHOOK_RETRY": f"{RETRIES},0.2,0.5",
}
GRANTS = ("service_request.read", "service_request.create", "service_request.update")
FLOW = """\
name: front-desk
title: Live tickets test (no business hours, so the test does not depend on the time)
timezone: UTC
nodes:
  start: {type: start, next: ring-om}
  ring-om: {type: ring, targets: ["101"], timeout: 5, no_answer: vm, busy: vm}
  vm: {type: voicemail, mailbox: "102"}
"""


@dataclass
class Office:
    fd: FrontdeskProcess
    hooks: Receiver
    tokens: dict[str, str]
    users: dict[str, int]
    open_ref: str
    contact_id: int
    down_url: str
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def api(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"http://127.0.0.1:{self.fd.http_port}{path}"
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, url, headers=headers, timeout=20, **kwargs)

    @contextmanager
    def websocket(self, who: str, query: str = "") -> Iterator[ClientConnection]:
        """A real WebSocket client signed in as ``who``, once the server says it is ready."""
        url = f"ws://127.0.0.1:{self.fd.http_port}/api/v1/events/ws{query}"
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        with connect(url, additional_headers=headers) as ws:
            ready = json.loads(ws.recv(timeout=10))
            assert ready["event"] == "ready" and ready["user_id"] == self.users[who], ready
            yield ws

    def phone(self, make: Callable[..., BaresipPhone], number: str, **options: Any) -> BaresipPhone:
        return registered_baresip(make, self.fd, number, **options)

    def outside(
        self, make: Callable[..., BaresipPhone], number: str, **options: Any
    ) -> BaresipPhone:
        """A caller from outside: not registered, trusted from loopback by the tenant."""
        return make(number, domain=f"127.0.0.1:{self.fd.sip_port}", register=False, **options)

    def render_greeting(self, out: Path) -> Path:
        """Mailbox 102's greeting, rendered to ``out``."""
        cli(self.fd, "voicemail", "greeting", "render", "102", "--out", str(out))
        return out

    def rita_answers(self, caller: BaresipPhone, rita_phone: BaresipPhone) -> str:
        """``caller`` dials 101 and the receptionist's phone accepts: the live call's ref."""
        caller.dial(f"sip:101@127.0.0.1:{self.fd.sip_port}")
        rita_phone.wait_event("CALL_INCOMING", timeout=10)
        rita_phone.accept()
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        return live_call_ref(self)


def cli(fd: FrontdeskProcess, *args: str) -> Any:
    """``frontdesk <args>`` on ``fd``'s data directory and database."""
    return fd.cli(*args, "--data", str(fd.data_dir), *fd._db_args())


def talk_wav(tmp: Path) -> Path:
    """A caller saying one sentence twelve times, a second apart."""
    voice = speech_wav(tmp / "voice.wav", "The printer on the second floor is broken.")
    gap = silence_wav(tmp / "gap.wav", 1.0)
    return concat_wavs(tmp / "talk.wav", *([voice, gap] * 12))


def next_event(
    ws: ClientConnection, key: str, seen: list[dict[str, Any]], timeout: float = 15.0
) -> dict[str, Any]:
    """The next message with event ``key`` (others are kept in ``seen``)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(
                f"no {key} on the WebSocket within {timeout:g} s; got {[m['event'] for m in seen]}"
            )
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        seen.append(message)
        if message["event"] == key:
            return message


def drain(ws: ClientConnection, seen: list[dict[str, Any]], quiet: float = 1.0) -> None:
    while True:
        try:
            seen.append(json.loads(ws.recv(timeout=quiet)))
        except TimeoutError:
            return


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


def seed_office(
    fd: FrontdeskProcess, hooks: Receiver, down_url: str
) -> tuple[dict[str, str], dict[str, int], str, int]:
    tokens: dict[str, str] = {}
    users: dict[str, int] = {}
    with database(fd) as db, db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        tenant.settings = {
            **(tenant.settings or {}),
            "allow_unauthenticated_loopback": True,  # outside callers arrive from loopback
            "missed_call_requests": True,
        }
        globex = directory.create_company(s, tenant.id, "Globex")
        hank = directory.create_contact(
            s, tenant.id, "Hank Scorpio", company_ids=[globex.id], numbers=[OUTSIDE]
        )
        printer = service.create_request(
            s, tenant.id, SYSTEM, title="Printer broken", contact_id=hank.id, company_id=globex.id
        )
        endpoints.create_endpoint(s, tenant.id, "helpdesk", f"{hooks.url}/hooks", secret=SECRET)
        endpoints.create_endpoint(s, tenant.id, "down", down_url, secret=SECRET)
        zammad.create_zammad_endpoint(s, tenant.id, f"{hooks.url}/api/v1/cti/t0ken")
        for number, name in (("101", "rita"), ("102", "sam")):
            ext = s.scalar(
                select(Extension).where(
                    Extension.tenant_id == tenant.id, Extension.number == number
                )
            )
            assert ext is not None and ext.user_id is not None
            users[name] = ext.user_id
            token, digest = new_token()
            s.add(
                ApiToken(
                    tenant_id=tenant.id,
                    user_id=ext.user_id,
                    name="t",
                    kind="api",
                    token_hash=digest,
                )
            )
            tokens[name] = token
        for role in ("office_manager", "service_manager"):
            s.add_all(
                PermissionOverride(tenant_id=tenant.id, role=role, permission=p, allowed=True)
                for p in GRANTS
            )
        s.flush()
        ref = f"SR-{printer.number}"
        contact_id = hank.id
    return tokens, users, ref, contact_id


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    server = ReceiverServer(("127.0.0.1", 0), RequestHandler)
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(name="office")
def office_fixture(
    tmp_path: Path,
    receiver: Receiver,
    frontdesk_factory: Callable[..., FrontdeskProcess],
    request: pytest.FixtureRequest,
) -> Iterator[Office]:
    """The demo tenant on SQLite (or, parametrized, PostgreSQL) with its mailbox 102, the
    front-desk flow, a known caller with an open request, three webhook endpoints (the
    helpdesk, one that is down, Zammad) and API tokens for 101 and 102."""
    fd = frontdesk_factory(db=getattr(request, "param", "sqlite"), start=False)
    (tmp_path / "flow.yaml").write_text(FLOW)
    cli(fd, "flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test")
    down_url = f"http://127.0.0.1:{closed_port()}/down"
    tokens, users, ref, contact_id = seed_office(fd, receiver, down_url)
    fd.start(extra_env=ENV)
    made = Office(fd, receiver, tokens, users, ref, contact_id, down_url)
    yield made
    fd.stop()
    print(f"\n--- frontdesk log ---\n{fd.log_tail(120)}")
    assert "Traceback" not in fd.log_tail(100_000)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def stored_cdr(office: Office, cdr_id: str) -> Cdr:
    with database(office.fd) as db, db.session() as s:
        row = s.get(Cdr, cdr_id)
        assert row is not None
        s.expunge(row)
        return row


def notes_of(office: Office, ref: str) -> list[RequestNote]:
    number = int(ref.removeprefix("SR-"))
    with database(office.fd) as db, db.session() as s:
        request = s.scalar(select(ServiceRequest).where(ServiceRequest.number == number))
        assert request is not None
        rows = list(
            s.scalars(
                select(RequestNote)
                .where(RequestNote.request_id == request.id)
                .order_by(RequestNote.id)
            )
        )
        for row in rows:
            s.expunge(row)
        return rows


def endpoint_ids(office: Office) -> dict[str, int]:
    with database(office.fd) as db, db.session() as s:
        return {e.name: e.id for e in s.scalars(select(WebhookEndpoint))}


def deliveries(office: Office) -> list[WebhookDelivery]:
    with database(office.fd) as db, db.session() as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        for row in rows:
            s.expunge(row)
        return rows


def actions_of(office: Office, cdr_id: str | None) -> list[dict[str, Any]]:
    assert cdr_id is not None
    extra = stored_cdr(office, cdr_id).extra or {}
    return list(extra.get(ticket_calls.CDR_EXTRA_KEY, []))


def live_call_ref(office: Office) -> str:
    def answered() -> str | None:
        calls = office.api("rita", "GET", "/api/v1/tickets/calls").json()
        live = [c["call_ref"] for c in calls if c["state"] == "answered"]
        return live[0] if live else None

    return str(wait_for("an answered call", answered))
