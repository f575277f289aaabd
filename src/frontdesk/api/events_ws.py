"""/api/v1/events/ws: live events over a WebSocket — the screen pop, call, request and
ownership events.

A client signs in with its API token, sent as ``Authorization: Bearer TOKEN`` or (for
browsers, which cannot set headers on a WebSocket) ``?token=TOKEN``; ``?events=call.*,
request.*`` narrows what it gets (shell patterns on routing keys; default everything). A bad
token, or a user who holds no role in the tenant, is refused with close code 4401 and a
reason saying what to do. Once signed in the client receives ``{"event": "ready", ...}``
and then one JSON message per event of its tenant (the webhook envelope: ``id``,
``event``, ``occurred_at``, ``tenant_id``, ``data``):

- ``call.caller_identified`` (the screen pop: who is calling — contact, company, open
  requests, ambiguous matches flagged as such) only to the user whose phone rings;
- other call and request events to users holding the event's ``required_permission``
  (``cdr.read`` for ``call.*``, ``service_request.read`` for ``request.*``);
- ownership events (``org.*``, from ``org/events.py``): a ``StakeholderInformed``
  (``org.informed.user.N``) to the person informed, a change request
  (``org.change_request.created``) to the users who may approve it; and every ownership
  event to audit readers (``audit.read``) who also hold its ``required_permission``
  (``greeting.read`` for ``org.greeting.updated``...). Their ``data`` is the event's fields.

Permissions are not frozen at connect, and nothing polls the database per connection
(``events_access.py``): the token's expiry closes the connection at that moment (4401); a
change of tokens, users, roles, permissions or vendor grants through org's change path
re-checks at once the connections it concerns (in-process event bus), one made by another
process (the ``frontdesk`` CLI) within ``ORG_WATCH_SECONDS`` (2 s, the audit log's newest
entry per tenant, one statement for all connections), and anything else within
``SWEEP_SECONDS`` (10 s, all connections batched per tenant). A role granted or taken away
applies to the next event without a reconnect; a token revoked, expired, or whose user was
removed or holds no role any more closes the connection (4401) with a reason saying so.

A client that sends ``ping`` gets ``{"event": "pong"}``. A client that falls more than
``QUEUE_LIMIT`` events behind is closed (4008) rather than slowing anyone else down.

The app's event bus calls subscribers on whatever thread published (API worker threads, the
loop); this module hands events to the connection's loop with ``call_soon_threadsafe`` and
must never block the publisher, nor send an event across tenants, nor query the database
per connection on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from frontdesk.api.events_access import Refusal, Seat, Standing, sign_in, watch_for
from frontdesk.org.access import Access
from frontdesk.org.credentials import token_hash
from frontdesk.org.events import ChangeRequested, EventBus, OrgEvent, StakeholderInformed
from frontdesk.store.db import Database
from frontdesk.store.models import utcnow

router = APIRouter(tags=["events"])

PATH = "/api/v1/events/ws"
CLOSE_NOT_SIGNED_IN = 4401
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_SLOW = 4008
QUEUE_LIMIT = 1000
SCREEN_POP = "call.caller_identified"
AUDIT_READ = "audit.read"
_OVERFLOW: dict[str, Any] = {"event": "overflow"}
_ORG_EVENT_IDS = uuid.UUID("5f0c1c8e-2a7b-4f7e-9d43-6c1f0e2b9a10")


@dataclass(frozen=True, slots=True)
class Listener:
    """Who is connected: their user, tenant, permissions and event patterns."""

    user_id: int
    username: str
    tenant_id: int
    access: Access
    patterns: tuple[str, ...]

    def wants(self, event: OrgEvent) -> bool:
        if getattr(event, "tenant_id", None) != self.tenant_id:
            return False
        key = str(event.routing_key)
        if self.patterns and not any(fnmatchcase(key, p) for p in self.patterns):
            return False
        if not hasattr(event, "envelope"):
            return self._may_see_org(event)
        if key == SCREEN_POP:
            return getattr(event, "user_id", None) == self.user_id
        permission = event.required_permission
        return permission is None or self.access.allows(permission)

    def _may_see_org(self, event: OrgEvent) -> bool:
        """An ownership event: its addressee, or an audit reader entitled to its kind."""
        if isinstance(event, StakeholderInformed) and event.user_id == self.user_id:
            return True
        if isinstance(event, ChangeRequested) and self.user_id in event.approver_user_ids:
            return True
        if not dataclasses.is_dataclass(event) or not self.access.allows(AUDIT_READ):
            return False
        permission = event.required_permission
        return permission is None or self.access.allows(permission)


def org_envelope(event: OrgEvent) -> dict[str, Any]:
    """The message of an ownership event: the webhook envelope's shape, ``data`` its fields.
    The id is derived from the event, so every client gets the same one."""
    data = {k: v for k, v in dataclasses.asdict(event).items() if k != "tenant_id"}
    data = json.loads(json.dumps(data, default=str))
    return {
        "id": str(uuid.uuid5(_ORG_EVENT_IDS, f"{type(event).__name__}{sorted(data.items())}")),
        "event": event.routing_key,
        "occurred_at": utcnow().isoformat(),
        "tenant_id": event.tenant_id,
        "data": data,
    }


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return websocket.query_params.get("token") or None


def _patterns(raw: str | None) -> tuple[str, ...] | str:
    """The ``events`` filter, or an error message naming the bad pattern."""
    if not raw:
        return ()
    patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
    for pattern in patterns:
        if len(pattern) > 64 or not all(c.isalnum() or c in "._*?" for c in pattern):
            return f"events pattern {pattern[:40]!r} is not valid: use e.g. call.*,request.*"
    return patterns


@router.websocket(PATH)
async def events_ws(websocket: WebSocket) -> None:
    """Live events of the signed-in user's tenant (see the module docstring)."""
    await websocket.accept()  # first, so the close reason reaches the client
    patterns = _patterns(websocket.query_params.get("events"))
    if isinstance(patterns, str):
        await websocket.close(CLOSE_BAD_REQUEST, patterns)
        return
    token = _token(websocket)
    if token is None:
        await websocket.close(
            CLOSE_NOT_SIGNED_IN,
            "no token: send 'Authorization: Bearer TOKEN' or ?token=TOKEN "
            "(POST /api/v1/login gives one)",
        )
        return
    db: Database = websocket.app.state.db
    verdict, mark = await asyncio.to_thread(sign_in, db, token, utcnow())
    if isinstance(verdict, Refusal):
        await websocket.close(CLOSE_NOT_SIGNED_IN, verdict.message(connected=False))
        return
    loop = asyncio.get_running_loop()
    seat = Seat(token_hash(token), verdict, loop.create_future())
    watch = watch_for(websocket.app.state, loop)
    watch.join(seat, mark)
    try:
        await _serve(websocket, seat, patterns)
    finally:
        watch.leave(seat)


def _listener(standing: Standing, patterns: tuple[str, ...]) -> Listener:
    return Listener(standing.user_id, standing.username, standing.tenant_id, standing.access,
                    patterns)


async def _serve(websocket: WebSocket, seat: Seat, patterns: tuple[str, ...]) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    listener = _listener(seat.standing, patterns)
    current = [(seat.standing, listener)]  # the listener of the seat's latest standing

    def put(message: dict[str, Any]) -> None:
        if queue.qsize() >= QUEUE_LIMIT:
            if queue.qsize() == QUEUE_LIMIT:
                queue.put_nowait(_OVERFLOW)
            return
        queue.put_nowait(message)

    def deliver(event: OrgEvent) -> None:
        standing = seat.standing  # replaced by the access watch when it changes
        known, now = current[0]
        if known is not standing:  # (two publisher threads may both build the same one)
            now = _listener(standing, patterns)
            current[0] = (standing, now)
        if now.wants(event):
            envelope = getattr(event, "envelope", None)
            message = envelope() if envelope is not None else org_envelope(event)
            loop.call_soon_threadsafe(put, message)

    bus: EventBus = websocket.app.state.bus
    unsubscribe = bus.subscribe(deliver)
    bridge = getattr(getattr(websocket.app.state, "server", None), "tickets", None)
    leave = bridge.listen(listener.tenant_id) if bridge is not None else None
    try:
        await websocket.send_json(
            {
                "event": "ready",
                "user_id": listener.user_id,
                "username": listener.username,
                "tenant_id": listener.tenant_id,
                "events": list(listener.patterns) or ["*"],
            }
        )
        await _pump(websocket, queue, _close_when_gone(websocket, seat))
    finally:
        unsubscribe()
        if leave is not None:
            leave()


async def _close_when_gone(websocket: WebSocket, seat: Seat) -> None:
    """Close with 4401 and the reason once the access watch says the sign-in is gone."""
    reason = await seat.closing
    await websocket.close(CLOSE_NOT_SIGNED_IN, reason)


async def _pump(
    websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]], checker: Awaitable[None]
) -> None:
    """Send queued events and answer pings until the client leaves (or falls behind, or
    loses its sign-in: ``checker``)."""
    sender = asyncio.ensure_future(_send(websocket, queue))
    receiver = asyncio.ensure_future(_receive(websocket, queue))
    checking = asyncio.ensure_future(checker)
    try:
        await asyncio.wait({sender, receiver, checking}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver, checking):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task


async def _send(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        message = await queue.get()
        if message is _OVERFLOW:
            await websocket.close(
                CLOSE_TOO_SLOW, f"more than {QUEUE_LIMIT} events waiting: reconnect and read faster"
            )
            return
        await websocket.send_text(json.dumps(message, separators=(",", ":")))


async def _receive(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        text = await websocket.receive_text()
        if text.strip().lower() == "ping":
            queue.put_nowait({"event": "pong"})
