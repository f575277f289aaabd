"""The call engine's door into the tickets layer: async calls for the event loop.

``CallTickets`` wraps the synchronous tickets functions the engine needs during a call:
the caller lookup (routing's technician shield and the screen pop), answer-time actions
(new request, note on a request, record a transfer or a send-to-voicemail), voicemail and
missed-call filing, and call events for webhooks and Zammad CTI. Each runs in a worker
thread (``asyncio.to_thread``) inside one transaction; the events it records become webhook
deliveries before commit, and after commit go to ``bus`` (WebSocket fan-out, called on
the event loop) and wake the webhook dispatcher.

This module must never be called from the SIP parser or transaction layer directly (the
engine awaits it from its call tasks), never hold locks, and never swallow a domain error:
the engine answers the person who asked with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.store.db import Database
from frontdesk.store.models import Extension
from frontdesk.tickets import calls, events
from frontdesk.tickets.actor import SYSTEM, Actor
from frontdesk.tickets.calls import CallAction, CallOutcome
from frontdesk.tickets.lookup import CallerLookup, caller_lookup
from frontdesk.tickets.outbox import Bus, unit_of_work
from frontdesk.tickets.webhooks import WebhookDispatcher

T = TypeVar("T")


def users_of_extensions(
    session: Session, tenant_id: int, extensions: Sequence[str]
) -> tuple[int, ...]:
    """The users (ids, in order, once each) owning ``extensions`` in ``tenant_id``."""
    if not extensions:
        return ()
    rows = session.execute(
        select(Extension.number, Extension.user_id).where(
            Extension.tenant_id == tenant_id, Extension.number.in_(list(extensions))
        )
    ).all()
    owner = {number: user_id for number, user_id in rows if user_id is not None}
    return tuple(dict.fromkeys(owner[n] for n in extensions if n in owner))


class CallTickets:
    """Tickets for live calls. One per process; safe to use from many call tasks."""

    def __init__(
        self,
        database: Database,
        *,
        dispatcher: WebhookDispatcher | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.database = database
        self.dispatcher = dispatcher
        self.bus = bus

    @staticmethod
    def _in_transaction(
        database: Database, work: Callable[[Session], T]
    ) -> tuple[T, list[events.TicketEvent]]:
        with unit_of_work(database) as unit:
            result = work(unit.session)
        return result, unit.events

    async def _run(self, work: Callable[[Session], T]) -> T:
        """``work`` in a worker thread and one transaction; its events are published here,
        on the loop, once it committed."""
        result, published = await asyncio.to_thread(self._in_transaction, self.database, work)
        if published:
            if self.dispatcher is not None:
                self.dispatcher.wake()
            if self.bus is not None:
                self.bus(published)
        return result

    async def lookup(self, tenant_id: int, caller: str) -> CallerLookup:
        """Who is calling (read only; for routing's ``facts_from_lookup``)."""

        def read(session: Session) -> CallerLookup:
            return caller_lookup(session, tenant_id, caller)

        return await self._run(read)

    async def screen_pop(
        self, tenant_id: int, call_id: str, user_id: int | None, caller: str
    ) -> CallerLookup:
        """Look the caller up and push it to ``user_id`` (event ``call.caller_identified``)."""

        def pop(session: Session) -> CallerLookup:
            found = caller_lookup(session, tenant_id, caller)
            events.record(
                session,
                events.CallerIdentified.of(
                    found, tenant_id=tenant_id, call_id=call_id, user_id=user_id
                ),
            )
            return found

        return await self._run(pop)

    async def call_event(self, event: events.TicketEvent) -> None:
        """Publish ``call.started`` / ``call.answered`` / ``call.ended`` (webhooks, Zammad)."""
        await self.call_events([event])

    async def call_events(self, batch: Sequence[events.TicketEvent]) -> None:
        """Publish several call events in one transaction, in order."""

        def publish(session: Session) -> None:
            for event in batch:
                events.record(session, event)

        await self._run(publish)

    async def screen_pops(
        self, tenant_id: int, call_id: str, extensions: Sequence[str], caller: str
    ) -> tuple[CallerLookup, tuple[int, ...]]:
        """Look the caller up once and push it (``call.caller_identified``) to the user of
        each extension in ``extensions`` (the phones that ring). Returns the lookup and the
        users it went to."""

        def pop(session: Session) -> tuple[CallerLookup, tuple[int, ...]]:
            found = caller_lookup(session, tenant_id, caller)
            users = users_of_extensions(session, tenant_id, extensions)
            for user_id in users:
                events.record(
                    session,
                    events.CallerIdentified.of(
                        found, tenant_id=tenant_id, call_id=call_id, user_id=user_id
                    ),
                )
            return found, users

        return await self._run(pop)

    async def action_on_cdr(self, cdr_id: str, action: CallAction) -> bool:
        """Append ``action`` to a stored CDR (a call that already ended); False when there is
        no such CDR."""

        def store(session: Session) -> bool:
            return calls.store_action_on_cdr(session, cdr_id, action)

        return await self._run(store)

    async def request_from_call(
        self,
        tenant_id: int,
        actor: Actor | int | str,
        *,
        caller: str,
        cdr_id: str | None,
        call_id: str | None,
        title: str | None = None,
        contact_id: int | None = None,
        company_id: int | None = None,
        priority: str = "normal",
        assignee_id: int | None = None,
        note: str | None = None,
    ) -> CallOutcome:
        """Answer-time action: open a new request from the live call."""

        def create(session: Session) -> CallOutcome:
            return calls.request_from_call(
                session,
                tenant_id,
                actor,
                caller=caller,
                cdr_id=cdr_id,
                call_id=call_id,
                title=title,
                contact_id=contact_id,
                company_id=company_id,
                priority=priority,
                assignee_id=assignee_id,
                note=note,
            )

        return await self._run(create)

    async def note_from_call(
        self,
        tenant_id: int,
        actor: Actor | int | str,
        ref: str | int,
        *,
        caller: str,
        cdr_id: str | None,
        call_id: str | None,
        text: str | None = None,
    ) -> CallOutcome:
        """Answer-time action: add the live call to an existing request."""

        def add(session: Session) -> CallOutcome:
            return calls.note_from_call(
                session,
                tenant_id,
                actor,
                ref,
                caller=caller,
                cdr_id=cdr_id,
                call_id=call_id,
                text=text,
            )

        return await self._run(add)

    async def record_call_action(
        self,
        tenant_id: int,
        actor: Actor | int | str,
        action: Literal["transferred", "sent_to_voicemail"],
        *,
        cdr_id: str | None,
        call_id: str | None,
        target: str | None = None,
        ref: str | int | None = None,
    ) -> CallAction:
        """Record a transfer or send-to-voicemail the engine has carried out."""

        def record(session: Session) -> CallAction:
            return calls.record_call_action(
                session,
                tenant_id,
                actor,
                action,
                cdr_id=cdr_id,
                call_id=call_id,
                target=target,
                ref=ref,
            )

        return await self._run(record)

    async def voicemail(
        self,
        tenant_id: int,
        *,
        caller: str,
        recording_path: str,
        mailbox: str,
        cdr_id: str | None,
        call_id: str | None,
        duration: float | None = None,
    ) -> CallOutcome:
        """File a voicemail left for the front desk or a group (recording attached)."""

        def file(session: Session) -> CallOutcome:
            return calls.request_from_voicemail(
                session,
                tenant_id,
                caller=caller,
                recording_path=recording_path,
                mailbox=mailbox,
                cdr_id=cdr_id,
                call_id=call_id,
                duration=duration,
                actor=SYSTEM,
            )

        return await self._run(file)

    async def missed_call(
        self,
        tenant_id: int,
        *,
        caller: str,
        called: str,
        cdr_id: str | None,
        call_id: str | None,
    ) -> CallOutcome | None:
        """File a missed call when the tenant's ``missed_call_requests`` setting is on."""

        def file(session: Session) -> CallOutcome | None:
            return calls.request_from_missed_call(
                session,
                tenant_id,
                caller=caller,
                called=called,
                cdr_id=cdr_id,
                call_id=call_id,
                actor=SYSTEM,
            )

        return await self._run(file)
