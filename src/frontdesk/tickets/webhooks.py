"""Signed outbound webhooks: call and request events to helpdesks and other systems,
retried with exponential back-off, every attempt in the delivery log.

Theory of operation.

1. ``enqueue(session, events)`` runs inside the transaction that made the change: for each
   enabled endpoint subscribed to an event it writes a ``webhook_deliveries`` row holding
   the exact body to send (status ``pending``). Nothing is sent yet, so a crash loses
   nothing: the rows are there when the process comes back.
2. ``WebhookDispatcher.deliver_due()`` claims due rows (moving ``next_attempt_at`` a lease
   ahead, so a second dispatcher does not take them too, and a crashed one's rows come
   back), POSTs them with ``httpx.AsyncClient`` -- concurrently to different receivers, one
   at a time and in the order the events happened to the same receiver URL -- and records
   each outcome:
   2xx -> ``delivered``; otherwise the attempt is logged and the next one scheduled after
   ``RetryPolicy.delay(attempt)``; after ``max_attempts`` the row is ``failed`` (kept, and
   ``endpoints.redeliver`` can queue it again).
3. Each attempt is signed: ``X-Frontdesk-Signature: t=<unix>,v1=<hex>`` where ``hex`` is
   HMAC-SHA256 with the endpoint's secret over ``f"{t}.{body}"``. Receivers check it with
   ``verify_signature`` (which also refuses old timestamps, against replay). Receivers
   should de-duplicate on ``X-Frontdesk-Event-Id``: delivery is at least once.

This module must never block the event loop (database work runs in worker threads), never
send a body that is not in the delivery log first, and never log a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from frontdesk.store.db import Database
from frontdesk.store.models import Tenant, utcnow
from frontdesk.tickets import events as ticket_events
from frontdesk.tickets import zammad
from frontdesk.tickets.errors import SignatureError
from frontdesk.tickets.events import TicketEvent
from frontdesk.tickets.model import WebhookDelivery, WebhookEndpoint
from frontdesk.tickets.numbers import tickets_setting

log = logging.getLogger("frontdesk.webhooks")

SIGNATURE_HEADER = "X-Frontdesk-Signature"
EVENT_HEADER = "X-Frontdesk-Event"
EVENT_ID_HEADER = "X-Frontdesk-Event-Id"
ATTEMPT_HEADER = "X-Frontdesk-Attempt"
JSON_CONTENT_TYPE = "application/json"
#: How old a signature timestamp may be before ``verify_signature`` refuses it.
SIGNATURE_TOLERANCE_S = 300.0


# --- signing -------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = SIGNATURE_TOLERANCE_S,
) -> int:
    """Check a received ``X-Frontdesk-Signature``; returns its timestamp.

    Raises ``SignatureError`` saying what is wrong: missing, malformed, outside
    ``tolerance`` seconds of ``now``, or no ``v1`` matching the body and secret.
    """
    if not header:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing", field=SIGNATURE_HEADER)
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            macs.append(value)
    if timestamp is None or not macs:
        raise SignatureError(
            f"{SIGNATURE_HEADER} {header!r} is malformed: expected t=<unix>,v1=<hex>",
            field=SIGNATURE_HEADER,
        )
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"{SIGNATURE_HEADER} timestamp {timestamp} is more than {tolerance:.0f}s from now "
            f"({current:.0f}): a replay, or the clocks disagree",
            field=SIGNATURE_HEADER,
        )
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise SignatureError(
            f"{SIGNATURE_HEADER} does not match the body: wrong secret, or the body changed",
            field=SIGNATURE_HEADER,
        )
    return timestamp


# --- what to send where --------------------------------------------------------------------


def subscribed(endpoint: WebhookEndpoint, routing_key: str) -> bool:
    """Does ``endpoint`` want events with ``routing_key`` (no patterns: all of them)?"""
    return not endpoint.events or any(fnmatchcase(routing_key, p) for p in endpoint.events)


def render(endpoint: WebhookEndpoint, event: TicketEvent, region: str) -> tuple[str, str] | None:
    """(content type, body) of ``event`` for ``endpoint``, or None when it is not sent."""
    if endpoint.kind == "zammad":
        body = zammad.render(event, region)
        return None if body is None else (zammad.CONTENT_TYPE, body)
    envelope = event.envelope()
    return JSON_CONTENT_TYPE, json.dumps(envelope, separators=(",", ":"), sort_keys=True)


def enqueue(
    session: Session, events: Iterable[TicketEvent], *, now: datetime | None = None
) -> list[WebhookDelivery]:
    """Write a pending delivery per (subscribed enabled endpoint, event), in the caller's
    transaction. Returns the rows written."""
    written: list[WebhookDelivery] = []
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    regions: dict[int, str] = {}
    due = now or utcnow()
    for event in events:
        tenant_id = event.tenant_id
        if tenant_id not in endpoints:
            endpoints[tenant_id] = list(
                session.scalars(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled.is_(True)
                    )
                )
            )
            tenant = session.get(Tenant, tenant_id)
            regions[tenant_id] = str(tickets_setting(tenant, "phone_region")) if tenant else "US"
        for endpoint in endpoints[tenant_id]:
            rendered = render(endpoint, event, regions[tenant_id])
            if rendered is None or not subscribed(endpoint, event.routing_key):
                continue
            delivery = WebhookDelivery(
                tenant_id=tenant_id,
                endpoint_id=endpoint.id,
                event_id=event.event_id,
                event_name=event.routing_key,
                content_type=rendered[0],
                body=rendered[1],
                status="pending",
                attempts=0,
                next_attempt_at=due,
                history=[],
                created_at=due,
            )
            session.add(delivery)
            written.append(delivery)
    session.flush()
    return written


def publish(session: Session, *, now: datetime | None = None) -> list[TicketEvent]:
    """Drain the events recorded on ``session`` and enqueue their webhook deliveries (call
    before commit); returns the events, for the live WebSocket bus after commit."""
    recorded = ticket_events.drain(session)
    enqueue(session, recorded, now=now)
    return recorded


# --- sending -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts ``1..max_attempts``; after attempt n fails the next waits
    ``first_delay * factor**(n-1)``, at most ``max_delay``."""

    max_attempts: int = 8
    first_delay: timedelta = timedelta(seconds=10)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)

    def delay(self, attempt: int) -> timedelta:
        grown = self.first_delay * (self.factor ** max(attempt - 1, 0))
        return min(grown, self.max_delay)


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: int
    attempt: int
    event_id: str
    event_name: str
    url: str
    secret: str
    content_type: str
    body: str


@dataclass(frozen=True, slots=True)
class _Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    """Sends pending deliveries; one per process is enough, several are safe.

    ``clock`` gives "now" for scheduling and signing (tests pass a fake one and call
    ``deliver_due()`` by hand); ``run()`` loops until ``stop()``, waking on ``wake()``
    (call it after committing new deliveries) or when the next retry falls due.
    """

    def __init__(
        self,
        database: Database,
        *,
        policy: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        timeout: float = 10.0,
        batch_size: int = 50,
        poll_interval: float = 30.0,
    ) -> None:
        self.database = database
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.timeout = timeout
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        #: A claimed delivery comes back to others after this long (crashed sender).
        self.lease = timedelta(seconds=timeout + 30)
        self._client = client
        self._own_client = client is None
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """New deliveries were committed: send them now rather than at the next poll.
        Safe to call from any thread (API worker threads, ``asyncio.to_thread``)."""
        self._signal()

    def stop(self) -> None:
        self._stopping = True
        self._signal()

    def _signal(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wakeup.set()
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
        self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def deliver_due(self) -> int:
        """One round: claim what is due, send it, record the outcomes. Returns how many
        attempts were made."""
        now = self.clock()
        jobs = await asyncio.to_thread(self._claim, now)
        if not jobs:
            return 0
        # one receiver gets its events one at a time, in the order they happened (Zammad's
        # caller log needs newCall before answer before hangup); receivers run concurrently
        by_receiver: dict[str, list[_Job]] = {}
        for job in jobs:
            by_receiver.setdefault(job.url, []).append(job)
        queues = list(by_receiver.values())
        sent = await asyncio.gather(*(self._send_in_order(queue) for queue in queues))
        results = [
            pair for queue, outcomes in zip(queues, sent, strict=True)
            for pair in zip(queue, outcomes, strict=True)
        ]
        await asyncio.to_thread(self._record, results)
        return len(jobs)

    async def _send_in_order(self, queue: list[_Job]) -> list[_Outcome]:
        return [await self._send(job) for job in queue]

    async def run(self) -> None:
        """Deliver until ``stop()``; database or network trouble is logged, never fatal."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        while not self._stopping:
            self._wakeup.clear()
            try:
                if await self.deliver_due():
                    continue
                wait = await asyncio.to_thread(self._seconds_to_next_due)
            except Exception:
                log.exception("webhook delivery round failed; retrying after the poll interval")
                wait = self.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)

    async def _send(self, job: _Job) -> _Outcome:
        body = job.body.encode()
        headers = {
            "Content-Type": job.content_type,
            "User-Agent": "Frontdesk-Webhooks/1",
            EVENT_HEADER: job.event_name,
            EVENT_ID_HEADER: job.event_id,
            ATTEMPT_HEADER: str(job.attempt),
            SIGNATURE_HEADER: sign(job.secret, body, int(self.clock().timestamp())),
        }
        try:
            response = await self._http().post(job.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            detail = str(exc) or "no detail"
            return _Outcome(None, f"{type(exc).__name__}: {detail} (POST {job.url})")
        if 200 <= response.status_code < 300:
            return _Outcome(response.status_code, None)
        return _Outcome(response.status_code, f"HTTP {response.status_code} from {job.url}")

    # -- database side (worker threads) ------------------------------------------------------

    def _claim(self, now: datetime) -> list[_Job]:
        jobs: list[_Job] = []
        with self.database.session() as s:
            rows = s.execute(
                select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookEndpoint.enabled.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(self.batch_size)
            ).all()
            for delivery, url, secret in rows:
                claimed = s.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery.id,
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=now + self.lease)
                    .execution_options(synchronize_session=False)
                )
                if getattr(claimed, "rowcount", 0) == 1:
                    jobs.append(
                        _Job(
                            delivery.id,
                            delivery.attempts + 1,
                            delivery.event_id,
                            delivery.event_name,
                            url,
                            secret,
                            delivery.content_type,
                            delivery.body,
                        )
                    )
        return jobs

    def _record(self, results: list[tuple[_Job, _Outcome]]) -> None:
        now = self.clock()
        with self.database.session() as s:
            for job, outcome in results:
                delivery = s.get(WebhookDelivery, job.delivery_id)
                if delivery is None:  # endpoint deleted meanwhile
                    continue
                self._apply(delivery, job, outcome, now)

    def _apply(
        self, delivery: WebhookDelivery, job: _Job, outcome: _Outcome, now: datetime
    ) -> None:
        delivery.attempts = job.attempt
        delivery.last_attempt_at = now
        delivery.response_code = outcome.status_code
        entry: dict[str, Any] = {
            "attempt": job.attempt,
            "at": now.isoformat(),
            "response_code": outcome.status_code,
            "error": outcome.error,
        }
        delivery.history = [*(delivery.history or []), entry]
        if outcome.ok:
            delivery.status, delivery.error = "delivered", None
            delivery.delivered_at, delivery.next_attempt_at = now, None
        elif job.attempt >= self.policy.max_attempts:
            delivery.status, delivery.next_attempt_at = "failed", None
            delivery.error = f"gave up after {job.attempt} attempts; last: {outcome.error}"
            log.warning(
                "webhook delivery %s (%s) failed: %s", delivery.id, job.event_name, delivery.error
            )
        else:
            delivery.error = outcome.error
            delivery.next_attempt_at = now + self.policy.delay(job.attempt)

    def _seconds_to_next_due(self) -> float:
        with self.database.session() as s:
            due = s.scalar(
                select(WebhookDelivery.next_attempt_at)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.status == "pending", WebhookEndpoint.enabled.is_(True))
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(1)
            )
        if due is None:
            return self.poll_interval
        seconds = (due - self.clock()).total_seconds()
        return min(max(seconds, 0.0), self.poll_interval)
