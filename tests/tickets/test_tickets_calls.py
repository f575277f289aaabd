"""Service requests from calls on SQLite and PostgreSQL: answer-time actions (new request,
note on an existing one, transfer, voicemail) recorded with who/what/when for the CDR and
the request; voicemail and missed calls filed as a note on the caller's open request or a
new request, with the recording attached; ambiguity refused or written down, not guessed."""

from __future__ import annotations

import pytest
from tickets_support import Acme

from frontdesk.store.db import Database
from frontdesk.store.models import Tenant
from frontdesk.tickets import calls, directory, events, service
from frontdesk.tickets.errors import AmbiguousContact, UnknownRequest

ANN = "+12125550100"


def _ann_at_initech(s, acme: Acme) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    initech = directory.create_company(s, acme.tenant_id, "Initech")
    ann = directory.create_contact(
        s, acme.tenant_id, "Ann Lee", company_ids=[initech.id], numbers=[ANN]
    )
    return ann.id, initech.id


def test_request_from_call_files_contact_company_and_call_note(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        ann, initech = _ann_at_initech(s, acme)
        outcome = calls.request_from_call(
            s,
            t,
            acme.receptionist,
            caller=f"sip:{ANN}@trunk",
            cdr_id="cdr-1",
            call_id="c-1",
            title="Laptop will not boot",
            note="urgent, CEO's laptop",
        )
        recorded = events.drain(s)
    r = outcome.request
    assert outcome.created and (r.contact_id, r.company_id, r.title) == (
        ann,
        initech,
        "Laptop will not boot",
    )
    assert r.created_by == f"user:{acme.receptionist}"
    assert (outcome.note.kind, outcome.note.cdr_id) == ("call", "cdr-1")
    assert outcome.note.text == (
        f"Call from Ann Lee (+1 212-555-0100); request opened by user:{acme.receptionist}: "
        "urgent, CEO's laptop"
    )
    entry = outcome.action.as_cdr_entry()
    assert (entry["action"], entry["actor"], entry["request"]) == (
        "request_created",
        f"user:{acme.receptionist}",
        f"SR-{r.number}",
    )
    assert entry["at"]
    assert [e.routing_key for e in recorded] == [
        "request.created",
        "request.note_added",
        "call.action_taken",
    ]
    extra = calls.cdr_extra_with({"codec": "PCMU"}, outcome.action)
    assert extra["codec"] == "PCMU" and extra["ticket_actions"] == [entry]


def test_unknown_caller_request_keeps_the_number(db: Database, acme: Acme) -> None:
    with db.session() as s:
        outcome = calls.request_from_call(
            s, acme.tenant_id, acme.receptionist, caller="+16502530000"
        )
    assert outcome.request.contact_id is None
    assert outcome.request.caller_number == "+16502530000"
    assert outcome.request.title == "Call from +1 650-253-0000"


def test_contact_in_two_companies_must_be_settled_by_whoever_answers(
    db: Database, acme: Acme
) -> None:
    t = acme.tenant_id
    with db.session() as s:
        initech = directory.create_company(s, t, "Initech")
        globex = directory.create_company(s, t, "Globex")
        directory.create_contact(s, t, "Ann", company_ids=[initech.id, globex.id], numbers=[ANN])
        with pytest.raises(AmbiguousContact) as caught:
            calls.request_from_call(s, t, acme.receptionist, caller=ANN)
        assert caught.value.field == "company_id"
        assert f"Initech (#{initech.id}), Globex (#{globex.id})" in str(caught.value)
        assert "pass company_id" in str(caught.value)
        assert service.list_requests(s, t) == []  # nothing half-written
        outcome = calls.request_from_call(s, t, acme.receptionist, caller=ANN, company_id=globex.id)
    assert outcome.request.company_id == globex.id


def test_number_shared_by_two_contacts_needs_contact_id(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        directory.create_contact(s, t, "Ann", numbers=[ANN])
        bob = directory.create_contact(s, t, "Bob", numbers=[ANN])
        with pytest.raises(AmbiguousContact, match="matches 2 contacts") as caught:
            calls.request_from_call(s, t, acme.receptionist, caller=ANN)
        assert caught.value.field == "contact_id"
        outcome = calls.request_from_call(s, t, acme.receptionist, caller=ANN, contact_id=bob.id)
    assert outcome.request.contact_id == bob.id


def test_note_from_call_and_recorded_transfer(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        ann, _ = _ann_at_initech(s, acme)
        request = service.create_request(
            s, t, "system", title="Printer", contact_id=ann, state="waiting"
        )
        outcome = calls.note_from_call(
            s,
            t,
            acme.receptionist,
            f"SR-{request.number}",
            caller=ANN,
            cdr_id="cdr-2",
            text="still jams",
        )
        transfer = calls.record_call_action(
            s,
            t,
            acme.receptionist,
            "transferred",
            cdr_id="cdr-2",
            call_id="c-2",
            target="102 (Sam Service-Manager)",
            ref=request.number,
        )
        notes = service.list_notes(s, t, request.number)
        with pytest.raises(UnknownRequest, match="SR-9999 does not exist in tenant acme"):
            calls.note_from_call(s, t, acme.receptionist, "SR-9999", caller=ANN)
    assert not outcome.created and request.state == "open"  # the customer got back in touch
    assert outcome.action.action == "note_added"
    assert (transfer.action, transfer.target, transfer.request_ref) == (
        "transferred",
        "102 (Sam Service-Manager)",
        f"SR-{request.number}",
    )
    call_notes = [n.text for n in notes if n.kind == "call"]
    assert call_notes == [
        f"Call from Ann Lee (+1 212-555-0100), noted by user:{acme.receptionist}: still jams",
        f"Call transferred to 102 (Sam Service-Manager) by user:{acme.receptionist}",
    ]


def test_voicemail_creates_a_request_with_the_recording(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        ann, initech = _ann_at_initech(s, acme)
        outcome = calls.request_from_voicemail(
            s,
            t,
            caller=ANN,
            recording_path="/var/spool/vm/acme/1.wav",
            mailbox="front desk",
            cdr_id="cdr-3",
            duration=42,
        )
    assert outcome.created and outcome.request.created_by == "system"
    assert (outcome.request.contact_id, outcome.request.company_id) == (ann, initech)
    assert outcome.request.title == "Voicemail from Ann Lee (+1 212-555-0100)"
    assert (outcome.note.kind, outcome.note.attachment_path, outcome.note.cdr_id) == (
        "voicemail",
        "/var/spool/vm/acme/1.wav",
        "cdr-3",
    )
    assert outcome.note.text == "Voicemail from Ann Lee (+1 212-555-0100) for front desk, 0:42"


def test_voicemail_goes_to_the_contacts_open_request(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        ann, _ = _ann_at_initech(s, acme)
        older = service.create_request(s, t, "system", title="older", contact_id=ann)
        newer = service.create_request(s, t, "system", title="newer", contact_id=ann)
        service.add_note(s, t, "system", older.number, "touched")  # now the most recent
        resolved = service.create_request(s, t, "system", title="done", contact_id=ann)
        service.change_state(s, t, "system", resolved.number, "resolved")
        outcome = calls.request_from_voicemail(
            s, t, caller=ANN, recording_path="/vm/2.wav", mailbox="service group"
        )
        count = len(service.list_requests(s, t))
    assert not outcome.created and outcome.request.id == older.id != newer.id
    assert outcome.reason == "the most recently updated of 2 open requests of Ann Lee"
    assert outcome.note.attachment_path == "/vm/2.wav"
    assert count == 3  # no new request


def test_voicemail_from_ambiguous_or_anonymous_caller_opens_a_request(
    db: Database, acme: Acme
) -> None:
    t = acme.tenant_id
    with db.session() as s:
        directory.create_contact(s, t, "Ann", numbers=[ANN])
        directory.create_contact(s, t, "Bob", numbers=[ANN])
        shared = calls.request_from_voicemail(
            s, t, caller=ANN, recording_path="/vm/3.wav", mailbox="front desk"
        )
        anonymous = calls.request_from_voicemail(
            s, t, caller="anonymous", recording_path="/vm/4.wav", mailbox="front desk"
        )
    assert shared.created and shared.request.contact_id is None
    assert shared.request.caller_number == ANN
    assert "caller not identified for sure: number +12125550100 belongs to 2 contacts" in (
        shared.note.text
    )
    assert anonymous.created and anonymous.request.title == "Voicemail from anonymous"
    assert anonymous.note.attachment_path == "/vm/4.wav"


def test_missed_calls_follow_the_tenant_setting(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        ann, _ = _ann_at_initech(s, acme)
        assert calls.request_from_missed_call(s, t, caller=ANN, called="main") is None
        tenant = s.get(Tenant, t)
        assert tenant is not None
        tenant.settings["missed_call_requests"] = True
        s.flush()
        outcome = calls.request_from_missed_call(s, t, caller=ANN, called="main", cdr_id="c4")
        again = calls.request_from_missed_call(s, t, caller=ANN, called="main", cdr_id="c5")
        coworker = calls.request_from_missed_call(s, t, caller="103", called="main")
        anonymous = calls.request_from_missed_call(s, t, caller="anonymous", called="main")
    assert outcome is not None and outcome.created and outcome.request.contact_id == ann
    assert outcome.note.kind == "missed_call"
    assert again is not None and not again.created and again.request.id == outcome.request.id
    assert coworker is None and anonymous is None
