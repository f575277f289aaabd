"""Outbound webhooks on SQLite and PostgreSQL: HMAC signatures, the transactional outbox,
delivery to a real HTTP receiver on 127.0.0.1, retries with exponential back-off on a
hand-moved clock, an endpoint that is down (failed and logged, nothing lost), crash safety,
and the background loop with short real delays."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from tickets_support import Acme, Receiver

from frontdesk.store.db import Database
from frontdesk.tickets import endpoints, events, service, webhooks
from frontdesk.tickets.errors import InvalidValue, SignatureError
from frontdesk.tickets.model import WebhookDelivery
from frontdesk.tickets.outbox import unit_of_work
from frontdesk.tickets.webhooks import RetryPolicy, WebhookDispatcher, sign, verify_signature

SECRET = "s3cret-s3cret-s3cret"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def _dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def _deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _deliver_once(dispatcher: WebhookDispatcher) -> int:
    """One delivery round (``deliver_due``), then close the dispatcher's HTTP client."""

    async def go() -> int:
        try:
            return await dispatcher.deliver_due()
        finally:
            await dispatcher.aclose()

    return asyncio.run(go())


# --- signatures ----------------------------------------------------------------------------


def test_signature_round_trip_and_every_kind_of_bad_signature() -> None:
    body = b'{"event":"request.created"}'
    header = sign(SECRET, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(SECRET, header, body, now=1_700_000_010) == 1_700_000_000
    cases = [
        (SECRET, None, body, 1_700_000_000, "missing"),
        (SECRET, "v1=abc", body, 1_700_000_000, "malformed"),
        (SECRET, header, body + b" ", 1_700_000_000, "does not match"),
        ("another-secret-entirely", header, body, 1_700_000_000, "does not match"),
        (SECRET, header, body, 1_700_000_000 + 301, "more than 300s"),
    ]
    for secret, hdr, payload, now, words in cases:
        with pytest.raises(SignatureError, match=words):
            verify_signature(secret, hdr, payload, now=now)


def test_signature_accepts_any_matching_v1_during_secret_rotation() -> None:
    body = b"{}"
    new = sign(SECRET, body, 100).split("v1=")[1]
    header = f"t=100,v1={'0' * 64},v1={new}"
    assert verify_signature(SECRET, header, body, now=100) == 100


# --- the outbox ----------------------------------------------------------------------------


def test_enqueue_follows_subscriptions_and_the_transaction(
    db: Database, acme: Acme, receiver: Receiver
) -> None:
    t = acme.tenant_id
    with db.session() as s:
        endpoints.create_endpoint(s, t, "all", receiver.url, secret=SECRET)
        endpoints.create_endpoint(s, t, "requests", receiver.url, events=["request.created"])
        endpoints.create_endpoint(s, t, "off", receiver.url, enabled=False)
    with pytest.raises(RuntimeError), unit_of_work(db) as work:
        service.create_request(work.session, t, "system", title="rolled back")
        raise RuntimeError("crash inside the transaction")
    assert _deliveries(db) == []  # nothing published for a transaction that did not commit
    with unit_of_work(db) as work:
        request = service.create_request(work.session, t, "system", title="kept")
        service.add_note(work.session, t, "system", request.number, "hello")
    assert [e.routing_key for e in work.events] == ["request.created", "request.note_added"]
    rows = _deliveries(db)
    assert sorted((r.event_name, r.status, r.attempts) for r in rows) == [
        ("request.created", "pending", 0),
        ("request.created", "pending", 0),
        ("request.note_added", "pending", 0),
    ]
    body = json.loads(rows[0].body)
    assert (body["event"], body["tenant_id"], body["data"]["request"]["ref"]) == (
        "request.created",
        t,
        f"SR-{request.number}",
    )


def test_endpoint_validation(db: Database, acme: Acme) -> None:
    with db.session() as s:
        with pytest.raises(InvalidValue, match="not an http"):
            endpoints.create_endpoint(s, acme.tenant_id, "x", "ftp://example.com")
        with pytest.raises(InvalidValue, match="shorter than 16"):
            endpoints.create_endpoint(s, acme.tenant_id, "x", "https://h.example", secret="abc")
        made = endpoints.create_endpoint(s, acme.tenant_id, "x", "https://h.example/")
        assert len(made.secret) == 64
        with pytest.raises(Exception, match="'x' already exists in tenant acme"):
            endpoints.create_endpoint(s, acme.tenant_id, "x", "https://h.example/")


# --- delivery to a real receiver -----------------------------------------------------------


def test_delivery_to_a_real_receiver_with_a_valid_signature(
    db: Database, acme: Acme, receiver: Receiver
) -> None:
    with db.session() as s:
        endpoints.create_endpoint(
            s, acme.tenant_id, "helpdesk", receiver.url + "/hook", secret=SECRET
        )
    with unit_of_work(db) as work:
        request = service.create_request(
            work.session, acme.tenant_id, acme.receptionist, title="Printer jams", priority="high"
        )
    assert _deliver_once(WebhookDispatcher(db)) == 1
    [got] = receiver.received
    assert got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-frontdesk-event"] == "request.created"
    assert got.headers["x-frontdesk-attempt"] == "1"
    verify_signature(SECRET, got.headers["x-frontdesk-signature"], got.body)
    document = json.loads(got.body)
    assert document["id"] == got.headers["x-frontdesk-event-id"] == work.events[0].event_id
    assert document["data"]["request"]["title"] == "Printer jams"
    assert document["data"]["request"]["ref"] == f"SR-{request.number}"
    assert document["data"]["actor"] == f"user:{acme.receptionist}"
    [row] = _deliveries(db)
    assert (row.status, row.attempts, row.response_code, row.error) == ("delivered", 1, 200, None)
    assert row.delivered_at is not None and row.history[0]["response_code"] == 200


def test_retries_back_off_exponentially_until_the_receiver_recovers(
    db: Database, acme: Acme, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    with db.session() as s:
        endpoints.create_endpoint(s, acme.tenant_id, "hd", receiver.url, secret=SECRET)
        webhooks.enqueue(
            s,
            [
                events.WorkingOnCleared(
                    tenant_id=acme.tenant_id, technician_id=1, request_ref="SR-1", actor="system"
                )
            ],
            now=T0,
        )
    clock = FakeClock(T0)
    policy = RetryPolicy(max_attempts=5, first_delay=timedelta(seconds=10), factor=3)
    dispatcher = WebhookDispatcher(db, policy=policy, clock=clock)

    async def go() -> list[int]:
        made = []
        try:
            for step in (0, 9, 1, 29, 1):  # seconds to move the clock before each round
                clock.advance(timedelta(seconds=step))
                made.append(await dispatcher.deliver_due())
        finally:
            await dispatcher.aclose()
        return made

    assert asyncio.run(go()) == [1, 0, 1, 0, 1]  # due at T0, T0+10s, T0+10s+30s
    [row] = _deliveries(db)
    assert (row.status, row.attempts, row.response_code) == ("delivered", 3, 200)
    assert [h["response_code"] for h in row.history] == [500, 503, 200]
    assert [h["at"] for h in row.history] == [
        T0.isoformat(),
        (T0 + timedelta(seconds=10)).isoformat(),
        (T0 + timedelta(seconds=40)).isoformat(),
    ]
    assert row.history[0]["error"] == f"HTTP 500 from {receiver.url}"
    bodies = {r.body for r in receiver.received}
    assert len(bodies) == 1  # the same body every time
    for got in receiver.received:  # each attempt signed at its own time
        verify_signature(
            SECRET, got.headers["x-frontdesk-signature"], got.body, now=clock().timestamp()
        )


def test_endpoint_down_retries_then_fails_and_nothing_is_lost(
    db: Database, acme: Acme, receiver: Receiver
) -> None:
    with db.session() as s:
        endpoint = endpoints.create_endpoint(s, acme.tenant_id, "down", _dead_url(), secret=SECRET)
        request = service.create_request(s, acme.tenant_id, "system", title="x")
        webhooks.publish(s, now=T0)
        endpoint_id = endpoint.id
    clock = FakeClock(T0)
    policy = RetryPolicy(max_attempts=4, first_delay=timedelta(seconds=1), factor=2)
    dispatcher = WebhookDispatcher(db, policy=policy, clock=clock, timeout=2)

    async def rounds() -> None:
        try:
            for delay in (0, 1, 2, 4):
                clock.advance(timedelta(seconds=delay))
                assert await dispatcher.deliver_due() == 1
            clock.advance(timedelta(hours=1))
            assert await dispatcher.deliver_due() == 0  # failed rows are not retried
        finally:
            await dispatcher.aclose()

    asyncio.run(rounds())
    [row] = _deliveries(db)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 4, None)
    assert row.error is not None and row.error.startswith("gave up after 4 attempts; last: Connect")
    assert [h["response_code"] for h in row.history] == [None] * 4
    assert json.loads(row.body)["data"]["request"]["ref"] == f"SR-{request.number}"
    with db.session() as s:  # the log names it; bring the endpoint up and redeliver
        assert [d.id for d in endpoints.list_deliveries(s, acme.tenant_id, status="failed")] == [
            row.id
        ]
        endpoints.update_endpoint(s, acme.tenant_id, endpoint_id, url=receiver.url)
        endpoints.redeliver(s, acme.tenant_id, row.id)
    clock.now = datetime.now(UTC)
    retry = WebhookDispatcher(db, clock=clock)

    async def again() -> int:
        try:
            return await retry.deliver_due()
        finally:
            await retry.aclose()

    assert asyncio.run(again()) == 1
    assert receiver.received[0].body.decode() == row.body
    assert _deliveries(db)[0].status == "delivered"


def test_a_crashed_sender_loses_nothing(db: Database, acme: Acme, receiver: Receiver) -> None:
    """Rows claimed by a sender that died come back after the lease; rows never claimed
    are there for the next process."""
    with db.session() as s:
        endpoints.create_endpoint(s, acme.tenant_id, "hd", receiver.url, secret=SECRET)
        service.create_request(s, acme.tenant_id, "system", title="x")
        webhooks.publish(s, now=T0)
    clock = FakeClock(T0)
    crashed = WebhookDispatcher(db, clock=clock)
    assert len(crashed._claim(T0)) == 1  # claimed, then the process "dies" before sending
    survivor = WebhookDispatcher(db, clock=clock)

    async def go() -> list[int]:
        try:
            first = await survivor.deliver_due()
            clock.advance(survivor.lease)
            return [first, await survivor.deliver_due()]
        finally:
            await survivor.aclose()

    assert asyncio.run(go()) == [0, 1]  # not while leased; after the lease, yes
    assert [r.status for r in _deliveries(db)] == ["delivered"]
    assert len(receiver.received) == 1


def test_run_loop_delivers_and_retries_with_real_short_delays(
    db: Database, acme: Acme, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    with db.session() as s:
        endpoints.create_endpoint(s, acme.tenant_id, "hd", receiver.url, secret=SECRET)
    policy = RetryPolicy(max_attempts=3, first_delay=timedelta(milliseconds=50))
    dispatcher = WebhookDispatcher(db, policy=policy, poll_interval=5.0)

    async def go() -> None:
        task = asyncio.create_task(dispatcher.run())
        with unit_of_work(db, dispatcher=dispatcher) as work:
            service.create_request(work.session, acme.tenant_id, "system", title="live")
        try:
            for _ in range(400):
                if [r.status for r in await asyncio.to_thread(_deliveries, db)] == ["delivered"]:
                    break
                await asyncio.sleep(0.025)
        finally:
            dispatcher.stop()
            await asyncio.wait_for(task, 10)
            await dispatcher.aclose()

    asyncio.run(go())
    [row] = _deliveries(db)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert [h["response_code"] for h in row.history] == [503, 200]


def test_wake_from_a_worker_thread_starts_delivery(
    db: Database, acme: Acme, receiver: Receiver
) -> None:
    """The API and ``asyncio.to_thread`` commit in worker threads and wake from there; the
    poll interval is far beyond the wait, so only the wake can have sent it."""
    with db.session() as s:
        endpoints.create_endpoint(s, acme.tenant_id, "hd", receiver.url, secret=SECRET)
    dispatcher = WebhookDispatcher(db, poll_interval=60.0)

    def commit_in_a_thread() -> None:
        with unit_of_work(db, dispatcher=dispatcher) as work:
            service.create_request(work.session, acme.tenant_id, "system", title="from a thread")

    async def go() -> bool:
        task = asyncio.create_task(dispatcher.run())
        await asyncio.sleep(0.2)  # the loop is idle, waiting for its poll interval
        # A plain thread the loop does not wait on: nothing but the wake can rouse the loop
        # (a to_thread completion would wake it anyway and hide a thread-unsafe wake).
        committer = threading.Thread(target=commit_in_a_thread)
        committer.start()
        try:
            return await asyncio.to_thread(receiver.arrived.wait, 20)
        finally:
            dispatcher.stop()
            await asyncio.wait_for(task, 10)
            await dispatcher.aclose()
            committer.join(10)

    assert asyncio.run(go())
    assert json.loads(receiver.received[0].body)["data"]["request"]["title"] == "from a thread"


def test_one_receiver_gets_its_events_in_order_while_receivers_run_concurrently(
    db: Database, acme: Acme
) -> None:
    """Zammad's caller log needs newCall before answer before hangup: the POSTs to one URL
    go one at a time, in the order the events happened; another URL is not held up."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    in_flight = {"/a": 0, "/b": 0}
    most = {"/a": 0, "/b": 0}
    order: list[tuple[str, str]] = []
    b_arrived = threading.Event()
    b_during_first_a: list[bool] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                in_flight[self.path] += 1
                most[self.path] = max(most[self.path], in_flight[self.path])
                order.append((self.path, json.loads(body)["data"]["request"]["title"]))
                first_a = self.path == "/a" and len([p for p, _ in order if p == "/a"]) == 1
            if self.path == "/b":
                b_arrived.set()
            if first_a:  # hold the first /a until /b arrived (or give up after 5 s)
                b_during_first_a.append(b_arrived.wait(5.0))
            with lock:
                in_flight[self.path] -= 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with db.session() as s:
            endpoints.create_endpoint(s, acme.tenant_id, "zammad-like", base + "/a", secret=SECRET)
            endpoints.create_endpoint(s, acme.tenant_id, "other", base + "/b", secret=SECRET)
        for title in ("first", "second", "third"):
            with unit_of_work(db) as work:
                service.create_request(work.session, acme.tenant_id, acme.receptionist, title=title)
        assert _deliver_once(WebhookDispatcher(db)) == 6
    finally:
        server.shutdown()
        server.server_close()
    assert [t for p, t in order if p == "/a"] == ["first", "second", "third"]
    assert most["/a"] == 1  # never two at once to the same receiver
    assert b_during_first_a == [True]  # the other receiver was not held up
    assert all(row.status == "delivered" for row in _deliveries(db))
