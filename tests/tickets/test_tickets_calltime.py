"""The call engine's async door (``CallTickets``) on SQLite and PostgreSQL, used the way the
engine will: lookup and screen pop on the bus, an answer-time action, a voicemail filed,
call events reaching a real receiver through the running dispatcher (woken on commit),
and a domain error reaching the caller with nothing committed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from tickets_support import Acme, Receiver

from frontdesk.store.db import Database
from frontdesk.tickets import directory, endpoints, events, service
from frontdesk.tickets.calltime import CallTickets
from frontdesk.tickets.errors import AmbiguousContact
from frontdesk.tickets.webhooks import RetryPolicy, WebhookDispatcher, verify_signature

ANN = "+12125550100"
SECRET = "s3cret-s3cret-s3cret"


def test_a_call_through_the_async_door(db: Database, acme: Acme, receiver: Receiver) -> None:
    t = acme.tenant_id
    with db.session() as s:
        initech = directory.create_company(s, t, "Initech")
        directory.create_contact(s, t, "Ann Lee", company_ids=[initech.id], numbers=[ANN])
        endpoints.create_endpoint(s, t, "hd", receiver.url, secret=SECRET, events=["call.*"])
    published: list[events.TicketEvent] = []
    dispatcher = WebhookDispatcher(db, policy=RetryPolicy(first_delay=timedelta(seconds=0.05)))
    tickets = CallTickets(db, dispatcher=dispatcher, bus=published.extend)
    call = {"call_id": "c-77", "caller": f"sip:{ANN}@trunk", "callee": "+12125550000"}

    async def the_call() -> None:
        sender = asyncio.create_task(dispatcher.run())
        try:
            await tickets.call_event(events.CallStarted(tenant_id=t, users=("Rita",), **call))
            found = await tickets.screen_pop(t, "c-77", acme.receptionist, call["caller"])
            assert found.contact is not None and found.contact.name == "Ann Lee"
            await tickets.call_event(events.CallAnswered(tenant_id=t, answered_by="Rita", **call))
            outcome = await tickets.request_from_call(
                t,
                acme.receptionist,
                caller=call["caller"],
                cdr_id="cdr-77",
                call_id="c-77",
                title="Email down",
            )
            assert outcome.request.company_id == initech.id
            await tickets.call_event(events.CallEnded(tenant_id=t, disposition="answered", **call))
            for _ in range(400):
                if len(receiver.received) >= 5:
                    break
                await asyncio.sleep(0.025)
        finally:
            dispatcher.stop()
            await asyncio.wait_for(sender, 10)
            await dispatcher.aclose()

    asyncio.run(the_call())
    keys = [e.routing_key for e in published]
    assert keys[:2] == ["call.started", "call.caller_identified"]
    pop = next(e for e in published if isinstance(e, events.CallerIdentified))
    assert pop.user_id == acme.receptionist and pop.lookup["contacts"][0]["name"] == "Ann Lee"
    assert "request.created" in keys and "call.action_taken" in keys
    got = sorted(r.headers["x-frontdesk-event"] for r in receiver.received)
    assert got == [  # every call.* event, the screen pop included
        "call.action_taken",
        "call.answered",
        "call.caller_identified",
        "call.ended",
        "call.started",
    ]
    for request in receiver.received:
        verify_signature(SECRET, request.headers["x-frontdesk-signature"], request.body)


def test_voicemail_and_errors_through_the_async_door(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        a = directory.create_company(s, t, "A")
        b = directory.create_company(s, t, "B")
        directory.create_contact(s, t, "Ann", company_ids=[a.id, b.id], numbers=[ANN])
    tickets = CallTickets(db)

    async def go() -> None:
        with pytest.raises(AmbiguousContact, match="pass company_id"):
            await tickets.request_from_call(
                t, acme.receptionist, caller=ANN, cdr_id="x", call_id="x"
            )
        filed = await tickets.voicemail(
            t,
            caller=ANN,
            recording_path="/vm/9.wav",
            mailbox="front desk",
            cdr_id="cdr-9",
            call_id="c-9",
        )
        assert filed.created and filed.note.attachment_path == "/vm/9.wav"
        action = await tickets.record_call_action(
            t, acme.receptionist, "sent_to_voicemail", cdr_id="cdr-9", call_id="c-9"
        )
        assert action.as_cdr_entry()["action"] == "sent_to_voicemail"
        assert (
            await tickets.missed_call(t, caller=ANN, called="main", cdr_id=None, call_id=None)
            is None
        )  # setting off

    asyncio.run(go())
    with db.session() as s:
        [only] = service.list_requests(s, t)  # the refused one left nothing behind
        assert only.title.startswith("Voicemail from Ann")
