"""Zammad generic CTI: newCall, answer and hangup arrive at a real local receiver as form
posts with the fields Zammad's CTI API documents; request events are not sent there."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from tickets_support import Acme, Receiver

from frontdesk.store.db import Database
from frontdesk.tickets import events, service, webhooks, zammad
from frontdesk.tickets.endpoints import list_deliveries
from frontdesk.tickets.outbox import unit_of_work
from frontdesk.tickets.webhooks import WebhookDispatcher, verify_signature


def test_cti_numbers_are_international_digits_or_anonymous() -> None:
    assert zammad.cti_number("sip:+4930555716@trunk") == "4930555716"
    assert zammad.cti_number("(212) 555-0100") == "12125550100"
    assert zammad.cti_number("101") == "101"
    assert zammad.cti_number("anonymous") == "anonymous"
    assert zammad.cti_number("") == "anonymous"


def test_hangup_causes_follow_the_cdr_disposition() -> None:
    def cause(disposition: str) -> str:
        return events.CallEnded(
            tenant_id=1, call_id="c", caller="1", callee="2", disposition=disposition
        ).cause

    assert [cause(d) for d in ("answered", "busy", "cancelled", "no-answer", "failed")] == [
        "normalClearing",
        "busy",
        "cancel",
        "noAnswer",
        "congestion",
    ]


def _deliver_everything(db: Database) -> None:
    dispatcher = WebhookDispatcher(db, batch_size=1)  # one at a time: in order

    async def go() -> None:
        try:
            while await dispatcher.deliver_due():
                pass
        finally:
            await dispatcher.aclose()

    asyncio.run(go())


def _one_answered_call(t: int) -> list[events.TicketEvent]:
    call = {"call_id": "3f0e-42", "caller": "sip:+12125550100@trunk", "callee": "+12125550000"}
    rita = {"answered_by": "Rita Reception", "answering_number": "rita@acme.example"}
    return [
        events.CallStarted(
            tenant_id=t,
            users=("Rita Reception", "Sam Service-Manager"),
            queue="front desk",
            **call,
        ),
        events.CallAnswered(tenant_id=t, **rita, **call),
        events.CallEnded(tenant_id=t, disposition="answered", **rita, **call),
    ]


def test_call_events_reach_zammad_in_the_documented_form(
    db: Database, acme: Acme, receiver: Receiver
) -> None:
    t = acme.tenant_id
    with db.session() as s:
        endpoint = zammad.create_zammad_endpoint(s, t, receiver.url + "/api/v1/cti/TOKEN123")
        secret = endpoint.secret
    with unit_of_work(db) as work:
        for event in _one_answered_call(t):
            events.record(work.session, event)
        service.create_request(work.session, t, "system", title="not for Zammad")
    _deliver_everything(db)
    assert [r.path for r in receiver.received] == ["/api/v1/cti/TOKEN123"] * 3
    forms = []
    for got in receiver.received:
        assert got.headers["content-type"] == "application/x-www-form-urlencoded"
        verify_signature(secret, got.headers["x-frontdesk-signature"], got.body)
        forms.append(parse_qsl(got.body.decode(), keep_blank_values=True))
    common = [
        ("from", "12125550100"),
        ("to", "12125550000"),
        ("direction", "in"),
        ("callId", "3f0e-42"),
    ]
    assert forms[0] == [
        ("event", "newCall"),
        *common,
        ("user[]", "Rita Reception"),
        ("user[]", "Sam Service-Manager"),
        ("queue", "front desk"),
    ]
    assert forms[1] == [
        ("event", "answer"),
        *common,
        ("user[]", "Rita Reception"),
        ("answeringNumber", "rita@acme.example"),
    ]
    assert forms[2] == [
        ("event", "hangup"),
        *common,
        ("user[]", "Rita Reception"),
        ("cause", "normalClearing"),
        ("answeringNumber", "rita@acme.example"),
    ]
    with db.session() as s:
        names = sorted(d.event_name for d in list_deliveries(s, t))
    assert names == ["call.answered", "call.ended", "call.started"]  # no request events


def test_missed_call_hangup_cause(db: Database, acme: Acme) -> None:
    with db.session() as s:
        zammad.create_zammad_endpoint(s, acme.tenant_id, "https://zammad.example/api/v1/cti/t")
        [row] = webhooks.enqueue(
            s,
            [
                events.CallEnded(
                    tenant_id=acme.tenant_id,
                    call_id="c9",
                    caller="anonymous",
                    callee="+12125550000",
                    disposition="cancelled",
                )
            ],
        )
    assert dict(parse_qsl(row.body)) == {
        "event": "hangup",
        "from": "anonymous",
        "to": "12125550000",
        "direction": "in",
        "callId": "c9",
        "cause": "cancel",
    }


def test_voicemail_answer_and_transfer_are_zammad_answers() -> None:
    """A call our media answered is answered by the user ``voicemail`` (Zammad keeps it
    open); a transfer is a further ``answer`` naming the new user and number."""
    call = {"tenant_id": 1, "call_id": "c-9", "caller": "+12125550100", "callee": "100"}
    by_voicemail = events.CallAnswered(
        **call,
        answered_by=events.VOICEMAIL_USER,
        answering_number=None,
        answerer=events.ANSWERER_FRONTDESK,
    )
    assert zammad.cti_fields(by_voicemail) == [
        ("event", "answer"),
        ("from", "12125550100"),
        ("to", "100"),
        ("direction", "in"),
        ("callId", "c-9"),
        ("user[]", "voicemail"),
    ]
    moved = events.CallTransferred(
        **call,
        from_answered_by="voicemail",
        from_answerer=events.ANSWERER_FRONTDESK,
        to_answered_by="Sam Service-Manager",
        to_number="102",
        actor="user:7",
    )
    assert zammad.cti_fields(moved) == [
        ("event", "answer"),
        ("from", "12125550100"),
        ("to", "100"),
        ("direction", "in"),
        ("callId", "c-9"),
        ("user[]", "Sam Service-Manager"),
        ("answeringNumber", "102"),
    ]
    data = moved.envelope()
    assert data["event"] == "call.transferred"
    assert (data["data"]["from_answered_by"], data["data"]["to_number"]) == ("voicemail", "102")
    assert "call.transferred" in zammad.CTI_EVENTS
