"""Service requests on SQLite and PostgreSQL: numbering, the state table, notes and their
authors, "working on it now" (one per technician, enforced by the database too), errors
that name the thing and the fix, and the events recorded for the outbox."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from tickets_support import Acme

from frontdesk.store.db import Database
from frontdesk.tickets import directory, events, service
from frontdesk.tickets.actor import Actor
from frontdesk.tickets.errors import (
    InvalidTransition,
    InvalidValue,
    UnknownContact,
    UnknownRequest,
    UnknownUser,
)
from frontdesk.tickets.model import REQUEST_STATES, WorkingOn
from frontdesk.tickets.service import ALLOWED_TRANSITIONS, FIRST_REQUEST_NUMBER


def test_numbers_are_sequential_per_tenant(db: Database, acme: Acme) -> None:
    from frontdesk.store import repo

    with db.session() as s:
        other = repo.create_tenant(s, "globex", "Globex", "globex.example")
        first = service.create_request(s, acme.tenant_id, "system", title="one")
        second = service.create_request(s, acme.tenant_id, "system", title="two")
        elsewhere = service.create_request(s, other.id, "system", title="other")
    assert (first.number, second.number) == (FIRST_REQUEST_NUMBER, FIRST_REQUEST_NUMBER + 1)
    assert elsewhere.number == FIRST_REQUEST_NUMBER


def test_concurrent_creates_get_distinct_numbers(db: Database, acme: Acme) -> None:
    """Several sessions at once (threads, as asyncio.to_thread would): no duplicate numbers."""
    with db.session() as s:
        service.create_request(s, acme.tenant_id, "system", title="seed")  # the counter row
    numbers: list[int] = []
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            with db.session() as s:
                numbers.append(
                    service.create_request(s, acme.tenant_id, "system", title=f"r{i}").number
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert sorted(numbers) == list(range(FIRST_REQUEST_NUMBER + 1, FIRST_REQUEST_NUMBER + 9))


def test_create_validates_references_and_values(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        with pytest.raises(UnknownContact, match="contact #999 does not exist in tenant acme"):
            service.create_request(s, t, "system", title="x", contact_id=999)
        with pytest.raises(UnknownUser, match="user #999 does not exist in tenant acme"):
            service.create_request(s, t, "system", title="x", assignee_id=999)
        with pytest.raises(InvalidValue, match="priority 'asap' is not one of low, normal"):
            service.create_request(s, t, "system", title="x", priority="asap")
        with pytest.raises(InvalidValue, match="title must not be empty") as caught:
            service.create_request(s, t, "system", title="   ")
        assert caught.value.field == "title"


def test_unknown_request_names_number_and_tenant(db: Database, acme: Acme) -> None:
    with db.session() as s, pytest.raises(UnknownRequest) as caught:
        service.get_request(s, acme.tenant_id, "SR-9999")
    assert str(caught.value) == "service request SR-9999 does not exist in tenant acme"


@pytest.mark.parametrize("ref", ["SR-1001", "sr1001", " 1001 ", 1001])
def test_request_refs_are_read_leniently(db: Database, acme: Acme, ref: str | int) -> None:
    with db.session() as s:
        service.create_request(s, acme.tenant_id, "system", title="x")
        assert service.get_request(s, acme.tenant_id, ref).number == 1001


@pytest.mark.parametrize("ref", ["SR-", "ticket 5", "SR-12a"])
def test_malformed_refs_are_refused_with_the_form(ref: str) -> None:
    with pytest.raises(InvalidValue, match="write it as SR-<digits>"):
        service.parse_request_ref(ref)


def test_state_transitions_follow_the_table(db: Database, acme: Acme) -> None:
    """Every (from, to) pair of states: allowed ones happen, the others are refused."""
    t = acme.tenant_id
    with db.session() as s:
        for start, goal in itertools.permutations(REQUEST_STATES, 2):
            request = service.create_request(s, t, "system", title="x", state=start)
            if goal in ALLOWED_TRANSITIONS[start]:
                service.change_state(s, t, acme.tech_tom, request.number, goal)
                assert request.state == goal
                assert (request.resolved_at is not None) == (goal == "resolved")
                continue
            with pytest.raises(InvalidTransition) as caught:
                service.change_state(s, t, acme.tech_tom, request.number, goal)
            assert f"SR-{request.number} cannot go from {start} to {goal}" in str(caught.value)
            allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[start]))
            assert str(caught.value).endswith(f"it can go to {allowed}")
            assert request.state == start


def test_every_state_can_reach_resolved_and_be_reopened() -> None:
    assert all("resolved" in ALLOWED_TRANSITIONS[s] for s in REQUEST_STATES if s != "resolved")
    assert ALLOWED_TRANSITIONS["resolved"] == {"open"}


def test_update_records_who_what_when(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        request = service.create_request(s, t, acme.receptionist, title="Printer")
        events.drain(s)
        service.update_request(
            s, t, acme.service_manager, request.number, assignee_id=acme.tech_tom, priority="high"
        )
        notes = service.list_notes(s, t, request.number)
        recorded = events.drain(s)
    assert request.created_by == f"user:{acme.receptionist}"
    assert [(n.kind, n.actor, n.author_user_id) for n in notes] == [
        ("change", f"user:{acme.service_manager}", acme.service_manager)
    ]
    assert notes[0].text == f"priority: normal -> high; assignee_id: None -> {acme.tech_tom}"
    assert notes[0].created_at is not None
    assert [type(e).__name__ for e in recorded] == ["RequestUpdated"]
    updated = recorded[0]
    assert isinstance(updated, events.RequestUpdated)
    assert updated.changes == {"priority": ["normal", "high"], "assignee_id": [None, acme.tech_tom]}
    assert updated.envelope()["event"] == "request.updated"


def test_call_note_brings_a_waiting_request_back_to_open(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        request = service.create_request(s, t, "system", title="x", state="waiting")
        service.add_note(s, t, "helpdesk:zammad", request.number, "customer rang", kind="call")
        assert request.state == "open"
        service.change_state(s, t, "system", request.number, "waiting")
        service.add_note(s, t, "system", request.number, "internal remark")
        assert request.state == "waiting"  # a plain note is not the customer


def test_working_on_one_at_a_time_per_technician(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        first = service.create_request(s, t, "system", title="first")
        second = service.create_request(s, t, "system", title="second")
        service.set_working_on(s, t, acme.tech_tom, acme.tech_tom, first.number)
        assert first.state == "in_progress"
        events.drain(s)
        service.set_working_on(s, t, "helpdesk:zammad", acme.tech_tom, second.number)
        marks = list(s.scalars(select(WorkingOn).where(WorkingOn.user_id == acme.tech_tom)))
        assert [(m.request_id, m.set_by) for m in marks] == [(second.id, "helpdesk:zammad")]
        working = service.working_on(s, t, acme.tech_tom)
        assert working is not None and working.id == second.id
        set_event = next(e for e in events.drain(s) if isinstance(e, events.WorkingOnSet))
        assert (set_event.request_ref, set_event.previous_ref) == (
            f"SR-{second.number}",
            f"SR-{first.number}",
        )
        cleared = service.clear_working_on(s, t, acme.tech_tom, acme.tech_tom)
        assert cleared is not None and cleared.id == second.id
        assert service.working_on(s, t, acme.tech_tom) is None
        assert service.clear_working_on(s, t, acme.tech_tom, acme.tech_tom) is None


def test_database_refuses_two_marks_for_one_technician(db: Database, acme: Acme) -> None:
    with db.session() as s:
        a = service.create_request(s, acme.tenant_id, "system", title="a")
        b = service.create_request(s, acme.tenant_id, "system", title="b")
    with pytest.raises(IntegrityError), db.session() as s:
        for request in (a, b):
            s.add(
                WorkingOn(
                    tenant_id=acme.tenant_id,
                    user_id=acme.tech_tina,
                    request_id=request.id,
                    set_by="system",
                )
            )
        s.flush()


def test_resolving_clears_working_on_and_blocks_new_marks(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        request = service.create_request(s, t, "system", title="x")
        service.set_working_on(s, t, "system", acme.tech_tom, request.number)
        service.change_state(s, t, acme.tech_tom, request.number, "resolved")
        s.flush()
        assert service.working_on(s, t, acme.tech_tom) is None
        with pytest.raises(InvalidTransition, match="is resolved: reopen it"):
            service.set_working_on(s, t, "system", acme.tech_tom, request.number)


def test_working_on_checks_technician_and_request(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        request = service.create_request(s, t, "system", title="x")
        with pytest.raises(UnknownUser) as caught:
            service.set_working_on(s, t, "system", 9999, request.number)
        assert caught.value.field == "technician"
        with pytest.raises(UnknownRequest, match="SR-4242 does not exist"):
            service.set_working_on(s, t, "system", acme.tech_tom, "SR-4242")


def test_actors_are_explicit_and_checked() -> None:
    assert str(Actor.of(5)) == "user:5"
    assert str(Actor.of("helpdesk:zammad")) == "helpdesk:zammad"
    assert Actor.of("system").kind == "system"
    for bad in ("root", "user:x", "helpdesk:", "helpdesk:a b", True):
        with pytest.raises(InvalidValue) as caught:
            Actor.of(bad)  # type: ignore[arg-type]
        assert caught.value.field == "actor"


def test_contacts_and_companies_directory(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        initech = directory.create_company(s, t, "Initech", numbers=["+12125550199"])
        with pytest.raises(Exception, match="company 'Initech' already exists"):
            directory.create_company(s, t, "  Initech ")
        ann = directory.create_contact(
            s, t, "Ann", company_ids=[initech.id], numbers=["+12125550100", "(212) 555-0100"]
        )
        assert directory.contact_numbers(s, ann.id) == ["+12125550100"]  # one, normalised
        assert [c.name for c in directory.list_contacts(s, t, company_id=initech.id)] == ["Ann"]
        directory.delete_company(s, t, initech.id)
        assert directory.contact_company_ids(s, ann.id) == []
