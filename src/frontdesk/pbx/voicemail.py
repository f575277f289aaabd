"""Voicemail in the running server: which calls reach a mailbox, message-waiting lamps, and
the mailbox-check compliance watch.

`VoicemailService` is a `MediaService` for the media endpoint. It answers
- ``*97`` (the caller's own mailbox) and ``*97<mailbox>`` (any mailbox, with its PIN): the
  retrieval menu (`voicemail_calls.retrieve`);
- ``*98<mailbox>``: straight to that mailbox's greeting and tone (for transfers);
- a caller whose callee has a mailbox with "no answer -> voicemail" and did not answer, or
  has no phone registered: deposit (`voicemail_calls.deposit`).

It keeps an in-memory snapshot of mailboxes and their message counts (the SIP path never
waits on the database), refreshed when anything changes here and every few seconds from the
database (the CLI and API write from other processes). Count changes notify subscribed
phones (`mwi.MwiNotifier`). Every minute it looks for scheduled mailbox checks nobody made
and escalates each once (`media.compliance`). At start it reconciles messages a crash left
on disk without a row. Configuration changes made by phone (a personal greeting) go through
``org.service`` like any other, and their events go out on the server's ownership event bus
(``publish_org``) once committed, so the Phone Manager is told.

All database work runs in worker threads; this module never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.media import compliance
from frontdesk.media import voicemail_store as store
from frontdesk.media.events import EventBus, MailboxChecked, MediaEvent, MessagesChanged
from frontdesk.media.model import Mailbox, VoicemailSettings
from frontdesk.media.prompts import PromptLibrary
from frontdesk.org.events import EventBus as OrgEventBus
from frontdesk.org.events import OrgEvent
from frontdesk.pbx.directory import TenantInfo
from frontdesk.pbx.endpoint import CallScript, MediaCall, MediaEndpoint
from frontdesk.pbx.mwi import MwiNotifier
from frontdesk.store.db import Database

log = logging.getLogger("frontdesk.voicemail")

T = TypeVar("T")
CHECK_NUMBER = "*97"
DEPOSIT_PREFIX = "*98"
_SERVICE_CODE = "*"  # what CHECK_NUMBER and DEPOSIT_PREFIX begin with
REFRESH_SECONDS = 2.0
COMPLIANCE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class MailboxView:
    """What the SIP path needs to know about a mailbox, without the database."""

    id: int
    tenant_id: int
    number: str
    name: str
    no_answer_to_voicemail: bool


class VoicemailService:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        endpoint: MediaEndpoint,
        prompts: PromptLibrary | None = None,
        bus: EventBus | None = None,
        org_bus: Callable[[], OrgEventBus | None] | None = None,
    ) -> None:
        self.db = db
        self.data_dir = data_dir
        self.endpoint = endpoint
        self.prompts = prompts or PromptLibrary(data_dir)
        self.bus = bus or EventBus()
        #: the ownership event bus (the API's: change events, "informed" stakeholders),
        #: looked up when publishing — the server creates it after starting media
        self.org_bus = org_bus or (lambda: None)
        self.mailboxes: dict[tuple[int, str], MailboxView] = {}
        self.counts: dict[int, tuple[int, int]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.mwi = MwiNotifier(
            endpoint.engine, self.counts_for, voicemail_number=CHECK_NUMBER, now=endpoint.now
        )
        self.mwi.wakeup = lambda: endpoint.wakeup()
        endpoint.mwi = self.mwi
        self.bus.subscribe(self._log_event)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        added = await self.db_call(lambda s: store.reconcile(s, self.data_dir))
        if added:
            log.warning("voicemail: %d message(s) recovered after an unclean stop", len(added))
        await self.refresh()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._refresh_loop()),
            loop.create_task(self._compliance_loop()),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def db_call(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a worker thread, committed when it returns."""

        def run() -> T:
            with self.db.session() as session:
                return fn(session)

        return await asyncio.to_thread(run)

    # --- the snapshot -----------------------------------------------------------------------
    def _load(
        self, s: Session
    ) -> tuple[dict[tuple[int, str], MailboxView], dict[int, tuple[int, int]]]:
        boxes = {}
        counts = {}
        for box in s.scalars(select(Mailbox)):
            boxes[(box.tenant_id, box.number)] = MailboxView(
                box.id, box.tenant_id, box.number, box.name, box.no_answer_to_voicemail
            )
            counts[box.id] = store.counts(s, box.id)
        return boxes, counts

    async def refresh(self) -> None:
        """Reload mailboxes and counts; notify lamps whose counts changed elsewhere."""
        boxes, counts = await self.db_call(self._load)
        changed = [
            view
            for view in boxes.values()
            if view.id in self.counts and counts.get(view.id) != self.counts[view.id]
        ]
        self.mailboxes, self.counts = boxes, counts
        for view in changed:
            self.mwi.mailbox_changed(view.tenant_id, view.number)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:
                log.exception("voicemail: could not refresh mailboxes from the database")

    async def mailbox_changed(self, view: MailboxView) -> None:
        """Counts of ``view`` changed here: update the snapshot, lamps and listeners."""
        new, saved = await self.db_call(lambda s: store.counts(s, view.id))
        self.counts[view.id] = (new, saved)
        self.mwi.mailbox_changed(view.tenant_id, view.number)
        self.bus.publish(MessagesChanged(view.tenant_id, view.number, new, saved))

    def counts_for(self, tenant_id: int, number: str) -> tuple[int, int] | None:
        view = self.mailboxes.get((tenant_id, number))
        return None if view is None else self.counts.get(view.id, (0, 0))

    def mailbox(self, tenant_id: int, number: str) -> MailboxView | None:
        return self.mailboxes.get((tenant_id, number))

    # --- which calls are ours --------------------------------------------------------------
    def script_for(self, tenant: TenantInfo, dialled: str, caller: str) -> CallScript | None:
        if not dialled.startswith(_SERVICE_CODE):  # every INVITE asks: most dial a number
            return None
        from frontdesk.pbx import voicemail_calls as calls

        if dialled == CHECK_NUMBER:
            own = self.mailbox(tenant.id, caller)
            return self._bind(calls.retrieve, own) if own else self._bind(calls.no_mailbox, None)
        for prefix, script in ((CHECK_NUMBER, calls.retrieve), (DEPOSIT_PREFIX, calls.deposit)):
            if dialled.startswith(prefix) and len(dialled) > len(prefix):
                view = self.mailbox(tenant.id, dialled[len(prefix) :])
                return self._bind(script, view) if view else None
        return None

    def script_for_unanswered(self, tenant: TenantInfo, callee: str) -> CallScript | None:
        from frontdesk.pbx import voicemail_calls as calls

        view = self.mailbox(tenant.id, callee)
        if view is None or not view.no_answer_to_voicemail:
            return None
        return self._bind(calls.deposit, view)

    def _bind(self, script: Any, view: MailboxView | None) -> CallScript:
        async def run(call: MediaCall) -> None:
            await script(self, call, view)

        return run

    # --- checks and compliance ---------------------------------------------------------------
    def publish_org(self, events: Iterable[OrgEvent]) -> None:
        """Publish ownership events of a change made here (after its transaction committed)
        on the server's bus, as the API and CLI do for theirs; logged when there is none."""
        events = list(events)
        bus = self.org_bus()
        if bus is None:
            if events:
                log.info("voicemail: no ownership event bus; %d change event(s) not published",
                         len(events))
            return
        bus.publish(events)
        if events:
            log.info("voicemail: published %s", ", ".join(e.routing_key for e in events))

    async def record_check(self, view: MailboxView, by: str, channel: str) -> None:
        def write(s: Session) -> datetime:
            box = s.get(Mailbox, view.id)
            assert box is not None
            return compliance.record_check(
                s, box, by, channel, store.counts(s, view.id)[0]
            ).checked_at

        at = await self.db_call(write)
        self.bus.publish(MailboxChecked(view.tenant_id, view.number, by, channel, at))

    async def escalate(self, now: datetime | None = None) -> list[MediaEvent]:
        """Escalate every newly missed check; returns the events published."""
        moment = now or datetime.now(UTC)

        def run(s: Session) -> list[MediaEvent]:
            fallback = {
                row.tenant_id: str(row.variables.get("service_manager_extension"))
                for row in s.scalars(select(VoicemailSettings))
                if (row.variables or {}).get("service_manager_extension")
            }
            return list(compliance.escalate_missed(s, moment, default_escalation=fallback))

        events = await self.db_call(run)
        for event in events:
            self.bus.publish(event)
        return events

    async def _compliance_loop(self) -> None:
        while True:
            try:
                await self.escalate()
            except Exception:
                log.exception("voicemail: the mailbox-check compliance watch failed")
            await asyncio.sleep(COMPLIANCE_SECONDS)

    def _log_event(self, event: MediaEvent) -> None:
        from frontdesk.media.events import MailboxCheckMissed

        if isinstance(event, MailboxCheckMissed):
            local = event.slot_at.strftime("%Y-%m-%d %H:%M UTC")
            log.warning(
                "voicemail check missed: mailbox %s was not checked for the %s check "
                "(responsible: %s); escalated to %s",
                event.mailbox,
                local,
                ", ".join(event.responsible),
                f"extension {event.escalated_to}"
                if event.escalated_to
                else "nobody (set the mailbox's escalate-to or the tenant's "
                "service_manager_extension)",
            )


async def start_voicemail(server: Any, endpoint: MediaEndpoint) -> VoicemailService:
    """Create and start the service for a running server (see `pbx.media_setup`)."""
    bus = getattr(server, "media_bus", None) or EventBus()
    service = VoicemailService(server.db, server.config.data_dir, endpoint, bus=bus,
                               org_bus=lambda: getattr(server, "bus", None))
    endpoint.services.append(service)
    await service.start()
    return service
