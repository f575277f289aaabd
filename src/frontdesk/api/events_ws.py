"""/api/v1/events/ws: live events over a WebSocket — the screen pop, call, request and
ownership events.

A client signs in with its API token, sent as ``Authorization: Bearer TOKEN`` or (for
browsers, which cannot set headers on a WebSocket) ``?token=TOKEN``; ``?events=call.*,
request.*`` narrows what it gets (shell patterns on routing keys; default everything). A bad
token is refused with close code 4401 and a reason saying what to do. Once signed in the
client receives ``{"event": "ready", ...}`` and then one JSON message per event of its
tenant (the webhook envelope: ``id``, ``event``, ``occurred_at``, ``tenant_id``, ``data``):

- ``call.caller_identified`` (the screen pop: who is calling — contact, company, open
  requests, ambiguous matches flagged as such) only to the user whose phone rings;
- other call and request events to users holding the event's ``required_permission``
  (``cdr.read`` for ``call.*``, ``service_request.read`` for ``request.*``);
- ownership events (``org.*``, from ``org/events.py``): a ``StakeholderInformed``
  (``org.informed.user.N``) to the person informed, a change request
  (``org.change_request.created``) to the users who may approve it; and every ownership
  event to audit readers (``audit.read``) who also hold its ``required_permission``
  (``greeting.read`` for ``org.greeting.updated``...). Their ``data`` is the event's fields.

Permissions are not frozen at connect: every ``RECHECK_SECONDS`` (at once after a change of
roles, permissions or users goes by) the token is checked and the user's access resolved
again, so a role granted or taken away applies to the next event without a reconnect. A
token revoked or expired meanwhile closes the connection (4401) with a reason saying so.

A client that sends ``ping`` gets ``{"event": "pong"}``. A client that falls more than
``QUEUE_LIMIT`` events behind is closed (4008) rather than slowing anyone else down.

The app's event bus calls subscribers on whatever thread published (API worker threads, the
loop); this module hands events to the connection's loop with ``call_soon_threadsafe`` and
must never block the publisher, nor send an event across tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from frontdesk.org.access import Access, Actor, resolve_access
from frontdesk.org.credentials import user_for_token
from frontdesk.org.events import (
    ChangeApplied,
    ChangeRequested,
    EventBus,
    OrgEvent,
    StakeholderInformed,
)
from frontdesk.store.db import Database
from frontdesk.store.models import utcnow

router = APIRouter(tags=["events"])
log = logging.getLogger("frontdesk.api.events")

PATH = "/api/v1/events/ws"
CLOSE_NOT_SIGNED_IN = 4401
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_SLOW = 4008
QUEUE_LIMIT = 1000
SCREEN_POP = "call.caller_identified"
AUDIT_READ = "audit.read"
#: how often a connection's token and access are checked again (seconds)
RECHECK_SECONDS = 2.0
#: ownership changes of these resource types may change who sees what: recheck at once
ACCESS_RESOURCES = frozenset({"role_assignment", "permission", "user", "vendor_grant", "api_token"})
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


def _changes_access(event: OrgEvent) -> bool:
    return isinstance(event, ChangeApplied) and event.resource_type in ACCESS_RESOURCES


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


def _sign_in(db: Database, token: str, patterns: tuple[str, ...]) -> Listener | None:
    now = utcnow()
    with db.session() as session:
        owner = user_for_token(session, token, now)
        if owner is None:
            return None
        actor = Actor.for_user(owner.user)
        access = resolve_access(session, actor, owner.user.tenant_id, None, now)
        return Listener(owner.user.id, owner.user.username, owner.user.tenant_id, access, patterns)


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
    listener = await asyncio.to_thread(_sign_in, db, token, patterns)
    if listener is None:
        await websocket.close(
            CLOSE_NOT_SIGNED_IN,
            "the token is unknown, expired or revoked: sign in again with POST /api/v1/login",
        )
        return
    await _serve(websocket, listener, token)


@dataclass(slots=True)
class Seat:
    """A connection's listener, replaced when its access is resolved again."""

    listener: Listener
    token: str
    recheck: asyncio.Event


async def _serve(websocket: WebSocket, listener: Listener, token: str) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    seat = Seat(listener, token, asyncio.Event())

    def put(message: dict[str, Any]) -> None:
        if queue.qsize() >= QUEUE_LIMIT:
            if queue.qsize() == QUEUE_LIMIT:
                queue.put_nowait(_OVERFLOW)
            return
        queue.put_nowait(message)

    def deliver(event: OrgEvent) -> None:
        if _changes_access(event) and event.tenant_id == seat.listener.tenant_id:
            loop.call_soon_threadsafe(seat.recheck.set)
        if seat.listener.wants(event):
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
        await _pump(websocket, queue, _recheck(websocket, seat))
    finally:
        unsubscribe()
        if leave is not None:
            leave()


async def _recheck(websocket: WebSocket, seat: Seat) -> None:
    """Check the token and resolve access again every ``RECHECK_SECONDS`` (or at once after
    a change of roles); close with a reason when the token no longer signs anyone in."""
    db: Database = websocket.app.state.db
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seat.recheck.wait(), RECHECK_SECONDS)
        seat.recheck.clear()
        try:
            fresh = await asyncio.to_thread(_sign_in, db, seat.token, seat.listener.patterns)
        except Exception:  # the database is away for a moment: keep what we had
            log.exception("events: could not check user %s's access again", seat.listener.user_id)
            continue
        if fresh is None or fresh.user_id != seat.listener.user_id:
            await websocket.close(
                CLOSE_NOT_SIGNED_IN,
                "the token was revoked or expired while connected: sign in again with "
                "POST /api/v1/login and reconnect",
            )
            return
        seat.listener = fresh


async def _pump(
    websocket: WebSocket, queue: asyncio.Queue[dict[str, Any]], checker: Coroutine[Any, Any, None]
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
