"""Tickets on live calls: the server's side of the call engine's observer hooks.

The engine stays sans-I/O; it tells this bridge what happens through two hooks the server
wires: every CDR record it writes (``on_cdr``: a call started, was answered, ended) and
every fork (``on_fork``: whose phone rings). From those the bridge

- publishes ``call.started`` / ``call.answered`` / ``call.transferred`` / ``call.ended``
  (webhooks, Zammad CTI, the live WebSocket bus); a call Frontdesk's own media answers
  (voicemail, a menu, a prompt) is answered by ``frontdesk`` (Zammad: the user
  ``voicemail``), and a new answerer on the CDR (a transfer, a menu putting the caller
  through, a person sending the caller to voicemail) is a ``call.transferred``,
- pushes the caller lookup to the user of every ringing phone (``call.caller_identified``,
  the screen pop),
- files voicemails left for the front desk or a listed mailbox, and missed calls (tenant
  setting ``missed_call_requests``), as service requests; a call that only Frontdesk's media
  answered and that left no message (the caller hung up in voicemail or in a menu) is
  missed too,
- keeps the answer-time actions taken on a call (who, what, when) on its CDR.

Theory of operation. The hooks run on the event loop in the engine's hot path: they only
update a small in-memory record of the call and queue work; one worker task does the
database work in order (events of consecutive jobs in one transaction), so a call's events
leave in the order they happened. Work that nobody would see is skipped: screen pops only
for tenants with a WebSocket listener or webhook endpoint, database writes for call events
only for tenants with webhook endpoints. The webhook dispatcher runs as a task on the same
loop and stops with the server; undelivered deliveries stay in the database.

This module must never block the loop, raise into the engine, or decide anything about how
a call is routed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select

from frontdesk.media import voicemail_store
from frontdesk.media.events import EventBus as MediaEventBus
from frontdesk.media.events import MediaEvent, MessageDeposited
from frontdesk.org.events import EventBus, OrgEvent
from frontdesk.store.models import Tenant
from frontdesk.tickets import events
from frontdesk.tickets.calls import CallAction, voicemail_files_request
from frontdesk.tickets.calltime import CallTickets
from frontdesk.tickets.model import WebhookEndpoint
from frontdesk.tickets.webhooks import RetryPolicy, WebhookDispatcher

log = logging.getLogger("frontdesk.tickets.live")

RETRY_ENV = "FRONTDESK_WEBHOOK_RETRY"
#: ``callee_answered_by`` of calls the media endpoint answered (voicemail, menus).
MACHINE = "frontdesk"
SETTINGS_REFRESH = 2.0
RECENT_CALLS = 2000
CLOSE_GRACE = 5.0

Job = events.TicketEvent | Callable[[], Awaitable[None]]


class TicketsConfigError(ValueError):
    """A tickets setting of the server is wrong; the message names it and an example."""


def retry_policy(value: str | None) -> RetryPolicy:
    """``ATTEMPTS[,FIRST_DELAY_SECONDS[,MAX_DELAY_SECONDS]]`` (default 8,10,3600)."""
    if not value:
        return RetryPolicy()
    parts = [p.strip() for p in value.split(",")]
    try:
        attempts = int(parts[0])
        first = float(parts[1]) if len(parts) > 1 else 10.0
        most = float(parts[2]) if len(parts) > 2 else 3600.0
    except ValueError:
        attempts = 0
        first = most = -1.0
    if len(parts) > 3 or not 1 <= attempts <= 100 or not 0.05 <= first <= most <= 86400:
        raise TicketsConfigError(
            f"{RETRY_ENV}={value!r} must be ATTEMPTS[,FIRST_DELAY[,MAX_DELAY]] with 1-100 "
            "attempts and delays in seconds (0.05 <= first <= max <= 86400), e.g. 8,10,3600"
        )
    return RetryPolicy(
        max_attempts=attempts,
        first_delay=timedelta(seconds=first),
        max_delay=timedelta(seconds=most),
    )


@dataclass(slots=True)
class LiveCall:
    """What the bridge knows of one call (by CDR id), while it lasts and a while after."""

    cdr_id: str
    tenant_id: int
    caller: str
    callee: str
    sip_call_id: str
    answered_by: str | None = None
    ended: bool = False
    started_sent: bool = False
    disposition: str | None = None
    ringing: list[str] = field(default_factory=list)
    to_pop: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    voicemail_filed: bool = False
    #: a message was deposited from this call (whether or not it was filed)
    message_left: bool = False
    #: everyone who answered, in order (extensions; ``frontdesk`` for our own media)
    answerers: list[str] = field(default_factory=list)
    #: someone sent it to voicemail from the screen pop: its message becomes a request
    sent_to_voicemail: bool = False
    #: it walked the tenant's call flow (the main number, or shielded into the flow)
    via_flow: bool = False
    record: dict[str, Any] = field(default_factory=dict)
    #: "out" for a call an extension placed through a SIP trunk (CDR extra.trunk)
    direction: str = "in"

    def event_fields(self) -> dict[str, Any]:
        """What every ``call.*`` event says about the call itself."""
        return {
            "tenant_id": self.tenant_id,
            "call_id": self.cdr_id,
            "caller": self.caller,
            "callee": self.callee,
            "direction": self.direction,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_ref": self.cdr_id,
            "caller": self.caller,
            "callee": self.callee,
            "answered_by": self.answered_by,
            "ringing": list(self.ringing),
            "state": "ended" if self.ended else "answered" if self.answered_by else "ringing",
            "disposition": self.disposition,
            "actions": list(self.actions),
        }


class TicketsBridge:
    """One per server: see the module docstring."""

    def __init__(self, server: Any, policy: RetryPolicy | None = None) -> None:
        self.server = server
        self.bus = EventBus()
        self.dispatcher = WebhookDispatcher(server.db, policy=policy or RetryPolicy())
        self.tickets = CallTickets(server.db, dispatcher=self.dispatcher, bus=self.publish)
        self.calls: dict[str, LiveCall] = {}  # live calls by CDR id
        self.recent: OrderedDict[str, LiveCall] = OrderedDict()  # the last ended ones
        self.listening: Counter[int] = Counter()
        self.hooked: set[int] = set()  # tenants with an enabled webhook endpoint
        self.settings: dict[int, dict[str, Any]] = {}
        self._pending: deque[Job] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self.refresh()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.dispatcher.run()),
            loop.create_task(self._work()),
            loop.create_task(self._refresh_loop()),
        ]
        # requests changed through the API: their webhooks leave now, not at the next poll
        self.bus.subscribe(lambda _event: self.dispatcher.wake(), "request.")
        media = getattr(self.server, "media", None)
        for service in getattr(media, "services", ()):
            bus = getattr(service, "bus", None)
            if isinstance(bus, MediaEventBus):  # voicemail: MessageDeposited
                bus.subscribe(self._on_media_event)

    async def close(self) -> None:
        """Finish queued work (a few seconds at most), then stop the worker and dispatcher."""
        if self._pending or not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), timeout=CLOSE_GRACE)
        self.dispatcher.stop()
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=CLOSE_GRACE)
        await self.dispatcher.aclose()

    async def _drained(self) -> None:
        while self._pending or not self._idle.is_set():
            await self._idle.wait()
            await asyncio.sleep(0)

    def listen(self, tenant_id: int) -> Callable[[], None]:
        """A WebSocket client of ``tenant_id`` is listening (screen pops are worth making);
        returns the function to call when it leaves."""
        self.listening[tenant_id] += 1

        def leave() -> None:
            self.listening[tenant_id] -= 1

        return leave

    def publish(self, published: list[events.TicketEvent]) -> None:
        """Committed events to the live bus (WebSocket fan-out)."""
        self.bus.publish(cast(list[OrgEvent], published))

    def sent_to_voicemail(self, cdr_id: str) -> None:
        """The call was sent to a mailbox by whoever answered it (front-desk routed)."""
        live = self.call(cdr_id)
        if live is not None:
            live.sent_to_voicemail = True

    def call(self, cdr_id: str) -> LiveCall | None:
        """The call with this CDR id, live or recently ended."""
        return self.calls.get(cdr_id) or self.recent.get(cdr_id)

    # --- the engine's hooks (on the loop, in the hot path: never raise) ---------------------
    def on_cdr(self, record: dict[str, Any]) -> None:
        """A CDR record the engine is about to store; the call's actions are added to it."""
        try:
            self._observe(record)
        except Exception:
            log.exception("tickets: could not follow call %s", record.get("id"))

    def on_fork(self, call: Any, binding: Any) -> None:
        """The engine rings ``binding`` (a registered phone of extension ``binding.aor``)."""
        try:
            live = self.calls.get(call.id)
            extension = str(binding.aor)
            if live is None or extension in live.ringing:
                return
            live.ringing.append(extension)
            if not self._watched(live.tenant_id):
                return
            live.to_pop.append(extension)
            if len(live.to_pop) == 1:  # queued after call.started (also call_soon)
                asyncio.get_running_loop().call_soon(self._enqueue, lambda: self._screen_pop(live))
        except Exception:
            log.exception("tickets: screen pop for call %s not queued", getattr(call, "id", "?"))

    def _observe(self, record: dict[str, Any]) -> None:
        cdr_id = str(record["id"])
        live = self.call(cdr_id)
        if live is None:
            live = LiveCall(
                cdr_id,
                int(record["tenant_id"]),
                str(record["caller"]),
                str(record["callee"]),
                str(record["call_id"]),
            )
            trunk = (record.get("extra") or {}).get("trunk") or {}
            live.direction = "out" if trunk.get("direction") == "out" else "in"
            self._remember(live)
            if self._watched(live.tenant_id):
                # after this turn of the loop: the forks made right after this record are known
                asyncio.get_running_loop().call_soon(self._started, live)
            else:
                live.started_sent = True  # nobody to tell
        elif live.ended:
            return
        live.record = dict(record)
        if not live.via_flow and (record.get("extra") or {}).get("flow"):
            live.via_flow = True  # the tenant's call flow (the front desk) routes it
        answerer = record.get("callee_answered_by")
        if record.get("answered_at") is not None and answerer:
            self._answered(live, str(answerer), record)
        if live.actions or len(live.answerers) > 1:
            extra = dict(record.get("extra") or {})
            if live.actions:
                extra["ticket_actions"] = list(live.actions)
            if len(live.answerers) > 1:  # callee_answered_by is the last of them
                extra["answerers"] = list(live.answerers)
            record["extra"] = extra
        if record.get("disposition") is not None:
            self._ended(live, record)

    def _answered(self, live: LiveCall, answerer: str, record: dict[str, Any]) -> None:
        """``call.answered`` for the first answerer, ``call.transferred`` for each new one."""
        if answerer == live.answered_by:
            return
        previous, live.answered_by = live.answered_by, answerer
        live.answerers.append(answerer)
        tid = live.tenant_id
        name, number, kind = self._answerer(tid, answerer)
        if previous is None:
            self._started(live)
            self._emit(
                tid,
                lambda: events.CallAnswered(
                    **live.event_fields(),
                    answered_by=name,
                    answering_number=number,
                    answerer=kind,
                ),
            )
            return
        old_name, old_number, old_kind = self._answerer(tid, previous)
        self._emit(
            tid,
            lambda: events.CallTransferred(
                **live.event_fields(),
                from_answered_by=old_name,
                from_number=old_number,
                from_answerer=old_kind,
                to_answered_by=name,
                to_number=number,
                to_answerer=kind,
                actor=_mover(record),
            ),
        )

    def _answerer(self, tenant_id: int, answerer: str) -> tuple[str | None, str | None, str]:
        """(name, number, kind) of an answerer as the call events carry them."""
        if answerer == MACHINE:
            return events.VOICEMAIL_USER, None, events.ANSWERER_FRONTDESK
        return self._name(tenant_id, answerer), answerer, events.ANSWERER_USER

    def _started(self, live: LiveCall) -> None:
        """``call.started`` (once), naming the people whose phones ring (Zammad's user[])."""
        if live.started_sent:
            return
        live.started_sent = True
        ringing = live.ringing if live.direction == "in" else [live.caller]  # Zammad's user[]
        self._emit(
            live.tenant_id,
            lambda: events.CallStarted(
                **live.event_fields(),
                users=tuple(str(self._name(live.tenant_id, e)) for e in ringing),
            ),
        )

    def _ended(self, live: LiveCall, record: dict[str, Any]) -> None:
        self._started(live)
        live.ended = True
        self._forget_later(live)
        disposition = live.disposition = str(record["disposition"])
        person = live.answered_by if live.answered_by != MACHINE else None
        self._emit(
            live.tenant_id,
            lambda: events.CallEnded(
                **live.event_fields(),
                disposition=disposition,
                answered_by=self._name(live.tenant_id, person) if person else None,
                answering_number=person,
                cdr_id=live.cdr_id,
                duration=float(record.get("duration") or 0.0),
                billsec=float(record.get("billsec") or 0.0),
            ),
        )
        if not self.settings.get(live.tenant_id, {}).get("missed_call_requests"):
            return
        if record.get("answered_at") is None:
            self._enqueue(lambda: self._file_missed(live))
        elif live.answerers and all(a == MACHINE for a in live.answerers):
            # only our media answered: missed unless a message was left (its filing job
            # was queued before this one, when the mailbox stored it)
            self._enqueue(lambda: self._file_missed(live, unless_message=True))

    def _remember(self, live: LiveCall) -> None:
        self.calls[live.cdr_id] = live

    def _forget_later(self, live: LiveCall) -> None:
        """An ended call stays known (late voicemail filing, actions) among the last few."""
        self.calls.pop(live.cdr_id, None)
        self.recent[live.cdr_id] = live
        while len(self.recent) > RECENT_CALLS:
            self.recent.popitem(last=False)

    def _name(self, tenant_id: int, extension: str | None) -> str | None:
        if extension is None:
            return None
        engine = getattr(self.server, "engine", None)
        info = engine.directory.extension(tenant_id, extension) if engine else None
        return info.display_name if info is not None and info.display_name else extension

    # --- the worker -----------------------------------------------------------------------
    def _watched(self, tenant_id: int) -> bool:
        """Would anyone get this tenant's call events: a WebSocket client, or a webhook
        endpoint? (Calls nobody watches cost little.)"""
        return self.listening[tenant_id] > 0 or tenant_id in self.hooked

    def _emit(self, tenant_id: int, make: Callable[[], events.TicketEvent]) -> None:
        """Queue a call event, made only when someone would get it."""
        if self._watched(tenant_id):
            self._enqueue(make())

    def _enqueue(self, job: Job) -> None:
        self._pending.append(job)
        self._idle.clear()
        self._wake.set()

    async def _work(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[events.TicketEvent] = []
            while self._pending and isinstance(self._pending[0], events.TicketEvent):
                batch.append(cast(events.TicketEvent, self._pending.popleft()))
            try:
                if batch:
                    await self._publish_events(batch)
                else:
                    job = cast(Callable[[], Awaitable[None]], self._pending.popleft())
                    await job()
            except Exception:
                log.exception("tickets: live-call work failed (continuing with the next)")

    async def _publish_events(self, batch: list[events.TicketEvent]) -> None:
        stored = [e for e in batch if e.tenant_id in self.hooked]
        if stored:
            await self.tickets.call_events(stored)  # deliveries written, then on the bus
        live_only = [e for e in batch if e.tenant_id not in self.hooked]
        if live_only:
            self.publish(live_only)

    async def _screen_pop(self, live: LiveCall) -> None:
        extensions, live.to_pop = list(live.to_pop), []
        if not extensions:
            return
        found, users = await self.tickets.screen_pops(
            live.tenant_id, live.cdr_id, extensions, live.caller
        )
        log.info(
            "screen pop for call %s from %s to users %s (%s)",
            live.cdr_id,
            live.caller,
            list(users),
            "ambiguous" if found.ambiguous else "identified",
        )

    # --- filing ---------------------------------------------------------------------------
    def _on_media_event(self, event: MediaEvent) -> None:
        if isinstance(event, MessageDeposited):
            self._enqueue(lambda: self._file_voicemail(event))

    async def _file_voicemail(self, event: MessageDeposited) -> None:
        data_dir = Path(self.server.config.data_dir)
        folder = voicemail_store.message_dir(data_dir, event.tenant_id, event.mailbox)
        meta = await asyncio.to_thread(_read_sidecar, folder / f"{event.message_id}.json")
        cdr_id = str(meta.get("call_id") or "") or None
        live = self.call(cdr_id) if cdr_id else None
        if live is not None:
            live.message_left = True  # not a missed call, filed or not
        tenant = self.server.engine.directory.tenants.get(event.tenant_id)
        main = tenant.main_number if tenant is not None else ""
        via_main = live is not None and (
            (bool(main) and live.callee == main) or live.via_flow or live.sent_to_voicemail
        )
        settings = self.settings.get(event.tenant_id, {})
        if not voicemail_files_request(settings, event.mailbox, via_main_number=via_main):
            return
        outcome = await self.tickets.voicemail(
            event.tenant_id,
            caller=event.caller,
            recording_path=f"/api/v1/voicemail/messages/{event.message_id}/audio",
            mailbox=event.mailbox,
            cdr_id=cdr_id,
            call_id=cdr_id,
            duration=event.duration,
        )
        if live is not None:
            live.voicemail_filed = True
        log.info(
            "voicemail %s from %s for mailbox %s filed as %s (%s)",
            event.message_id,
            event.caller,
            event.mailbox,
            events.request_ref(outcome.request.number),
            outcome.reason,
        )
        if cdr_id:
            await self.record_action(cdr_id, outcome.action)

    async def _file_missed(self, live: LiveCall, *, unless_message: bool = False) -> None:
        if unless_message and live.message_left:
            return
        outcome = await self.tickets.missed_call(
            live.tenant_id,
            caller=live.caller,
            called=live.callee,
            cdr_id=live.cdr_id,
            call_id=live.cdr_id,
        )
        if outcome is not None:
            log.info(
                "missed call %s from %s filed as %s",
                live.cdr_id,
                live.caller,
                events.request_ref(outcome.request.number),
            )
            await self.record_action(live.cdr_id, outcome.action)

    async def record_action(self, cdr_id: str, action: CallAction) -> None:
        """Keep ``action`` on the call's CDR: a live call's CDR is stored again with it at
        once (and every later record carries it); an ended call's row is updated."""
        live = self.call(cdr_id)
        if live is not None and not live.ended:
            live.actions.append(action.as_cdr_entry())
            if live.record:
                self.server._persist_cdr(dict(live.record))
            return
        writer = getattr(self.server, "writer", None)
        if writer is not None:
            try:
                await writer.flush_now()  # the final record first, then the action on it
            except Exception:
                log.exception("tickets: CDR %s not flushed before recording an action", cdr_id)
        if not await self.tickets.action_on_cdr(cdr_id, action):
            log.warning("tickets: no CDR %s to record %s on", cdr_id, action.action)

    # --- what the bridge reads from the database -------------------------------------------
    async def refresh(self) -> None:
        hooked, settings = await asyncio.to_thread(self._read_tenants)
        self.hooked, self.settings = hooked, settings

    def _read_tenants(self) -> tuple[set[int], dict[int, dict[str, Any]]]:
        with self.server.db.session() as s:
            hooked = set(
                s.scalars(
                    select(WebhookEndpoint.tenant_id)
                    .where(WebhookEndpoint.enabled.is_(True))
                    .distinct()
                )
            )
            settings = {
                tid: dict(conf or {}) for tid, conf in s.execute(select(Tenant.id, Tenant.settings))
            }
        return hooked, settings

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(SETTINGS_REFRESH)
            try:
                await self.refresh()
            except Exception:
                log.exception("tickets: could not re-read webhook endpoints and settings")


def _mover(record: dict[str, Any]) -> str | None:
    """Who asked for the last move of the call (``extra.call_control``), None: the flow."""
    moves = [
        entry
        for entry in (record.get("extra") or {}).get("call_control") or ()
        if isinstance(entry, dict) and entry.get("action") in ("transfer", "to_voicemail")
    ]
    return str(moves[-1].get("actor")) if moves and moves[-1].get("actor") else None


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("voicemail sidecar %s unreadable (%s); filing without the call", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


async def start_tickets(server: Any) -> TicketsBridge:
    """Create the bridge for a started ``PbxServer``, hook it into the engine and start it."""
    bridge = TicketsBridge(server, retry_policy(os.environ.get(RETRY_ENV)))
    server.bus = bridge.bus  # the API's event bus: tickets events reach WebSocket clients
    server.engine.calls.on_fork = bridge.on_fork
    await bridge.start()
    return bridge
