"""Caller lookup on SQLite and PostgreSQL: co-workers, unknown callers, contacts and their
companies, ambiguous matches reported (never guessed), open requests with the assignee and
"working on it now"."""

from __future__ import annotations

from tickets_support import Acme

from frontdesk.store.db import Database
from frontdesk.tickets import directory, service
from frontdesk.tickets.errors import PhoneNumberError
from frontdesk.tickets.lookup import caller_lookup

ANN = "+12125550100"
SWITCHBOARD = "+12125550199"


def test_unknown_caller_matches_nothing(db: Database, acme: Acme) -> None:
    with db.session() as s:
        found = caller_lookup(s, acme.tenant_id, "sip:+16502530000@trunk")
    assert found.number == "+16502530000"
    assert not found.is_coworker and not found.ambiguous
    assert found.contacts == () and found.companies == () and found.open_requests == ()
    assert found.contact is None and found.company is None


def test_anonymous_and_garbage_caller_ids_are_no_match(db: Database, acme: Acme) -> None:
    with db.session() as s:
        for caller in ("anonymous", "", "sip:alice@example.com", "+999"):
            found = caller_lookup(s, acme.tenant_id, caller)
            assert found.number is None and not found.is_coworker and not found.contacts


def test_coworker_by_extension_and_by_mobile(db: Database, acme: Acme) -> None:
    with db.session() as s:
        directory.add_coworker_number(s, acme.tenant_id, acme.tech_tom, "(917) 555-0142", "mobile")
        by_ext = caller_lookup(s, acme.tenant_id, "sip:102@acme.example")
        by_mobile = caller_lookup(s, acme.tenant_id, "+19175550142")
    assert by_ext.is_coworker
    assert [(c.user_id, c.via, c.extension) for c in by_ext.coworkers] == [
        (acme.service_manager, "extension", "102")
    ]
    assert by_mobile.is_coworker
    assert [(c.user_id, c.name, c.via) for c in by_mobile.coworkers] == [
        (acme.tech_tom, "Tom Technician", "number")
    ]
    assert by_ext.rings_through(acme.tech_tina)  # co-workers always ring through


def test_extension_of_another_tenant_is_not_a_coworker(db: Database, acme: Acme) -> None:
    from frontdesk.store import repo

    with db.session() as s:
        other = repo.create_tenant(s, "globex", "Globex", "globex.example")
        repo.create_user_with_extension(s, other, "555", "Gus Globex", "pw")
        assert not caller_lookup(s, acme.tenant_id, "555").is_coworker
        assert caller_lookup(s, other.id, "555").is_coworker


def test_contact_company_and_open_requests_with_working_on(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        initech = directory.create_company(s, t, "Initech", numbers=[SWITCHBOARD])
        ann = directory.create_contact(
            s, t, "Ann Lee", company_ids=[initech.id], numbers=["212-555-0100"]
        )
        printer = service.create_request(
            s,
            t,
            acme.receptionist,
            title="Printer jams",
            contact_id=ann.id,
            company_id=initech.id,
            assignee_id=acme.tech_tom,
        )
        server = service.create_request(
            s,
            t,
            acme.receptionist,
            title="Server down",
            company_id=initech.id,
            assignee_id=acme.tech_tina,
        )
        done = service.create_request(s, t, "system", title="Old", contact_id=ann.id)
        service.change_state(s, t, "system", done.number, "resolved")
        service.set_working_on(s, t, acme.tech_tom, acme.tech_tom, printer.number)
        service.set_working_on(s, t, acme.service_manager, acme.tech_tina, printer.number)
        found = caller_lookup(s, t, "sip:+12125550100@trunk")
    assert found.number == ANN and not found.ambiguous
    assert found.contact is not None and found.contact.name == "Ann Lee"
    assert found.contact.company_ids == (initech.id,)
    assert found.company is not None and (found.company.name, found.company.via) == (
        "Initech",
        "contact",
    )
    by_ref = {r.ref: r for r in found.open_requests}
    assert set(by_ref) == {f"SR-{printer.number}", f"SR-{server.number}"}  # resolved one left out
    p = by_ref[f"SR-{printer.number}"]
    assert (p.assignee_id, p.assignee_name, p.assignee_working_on_it) == (
        acme.tech_tom,
        "Tom Technician",
        True,
    )
    assert (p.assignee_username, p.assignee_extension) == ("tom", "103")
    assert p.working_on_by == (acme.tech_tom, acme.tech_tina)
    srv = by_ref[f"SR-{server.number}"]
    assert (srv.assignee_name, srv.assignee_working_on_it, srv.working_on_by) == (
        "Tina Technician",
        False,
        (),
    )
    assert found.rings_through(acme.tech_tom) and found.rings_through(acme.tech_tina)
    assert not found.rings_through(acme.service_manager)
    assert found.as_dict()["open_requests"][0]["ref"].startswith("SR-")


def test_switchboard_number_matches_the_company_only(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        initech = directory.create_company(s, t, "Initech", numbers=[SWITCHBOARD])
        found = caller_lookup(s, t, SWITCHBOARD)
    assert found.contacts == () and not found.ambiguous
    assert found.company is not None and (found.company.id, found.company.via) == (
        initech.id,
        "number",
    )


def test_contact_in_two_companies_is_ambiguous(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        initech = directory.create_company(s, t, "Initech")
        globex = directory.create_company(s, t, "Globex")
        ann = directory.create_contact(
            s, t, "Ann Lee", company_ids=[initech.id, globex.id], numbers=[ANN]
        )
        service.create_request(s, t, "system", title="A", company_id=initech.id)
        service.create_request(s, t, "system", title="B", company_id=globex.id)
        found = caller_lookup(s, t, ANN)
    assert found.ambiguous
    assert found.ambiguity == (
        f"contact Ann Lee (#{ann.id}) matches 2 companies: "
        f"Initech (#{initech.id}), Globex (#{globex.id})"
    )
    assert found.contact is not None and found.company is None  # not guessed
    assert {r.title for r in found.open_requests} == {"A", "B"}  # every candidate's requests


def test_number_shared_by_two_contacts_is_ambiguous(db: Database, acme: Acme) -> None:
    t = acme.tenant_id
    with db.session() as s:
        ann = directory.create_contact(s, t, "Ann Lee", numbers=[ANN])
        bob = directory.create_contact(s, t, "Bob Roe", numbers=["+1 212 555 0100"])
        found = caller_lookup(s, t, ANN)
    assert found.ambiguous and found.contact is None
    assert [c.id for c in found.contacts] == [ann.id, bob.id]
    assert found.ambiguity == (
        f"number {ANN} belongs to 2 contacts: Ann Lee (#{ann.id}), Bob Roe (#{bob.id})"
    )


def test_numbers_are_per_tenant(db: Database, acme: Acme) -> None:
    from frontdesk.store import repo

    with db.session() as s:
        other = repo.create_tenant(s, "globex", "Globex", "globex.example")
        directory.create_contact(s, other.id, "Ann Elsewhere", numbers=[ANN])
        assert caller_lookup(s, acme.tenant_id, ANN).contacts == ()


def test_tenant_region_reads_national_numbers(db: Database, acme: Acme) -> None:
    from frontdesk.store.models import Tenant

    with db.session() as s:
        tenant = s.get(Tenant, acme.tenant_id)
        assert tenant is not None
        tenant.settings["phone_region"] = "GB"
        s.flush()
        contact = directory.create_contact(s, acme.tenant_id, "Liz", numbers=["020 7946 0958"])
        assert directory.contact_numbers(s, contact.id) == ["+442079460958"]
        found = caller_lookup(s, acme.tenant_id, "02079460958")
    assert found.contact is not None and found.contact.id == contact.id


def test_bad_number_on_a_contact_is_refused(db: Database, acme: Acme) -> None:
    with db.session() as s:
        ann = directory.create_contact(s, acme.tenant_id, "Ann")
        try:
            directory.add_contact_number(s, acme.tenant_id, ann.id, "12345")
        except PhoneNumberError as exc:
            assert "'12345'" in str(exc) and "international form" in str(exc)
        else:
            raise AssertionError("an invalid number was stored")
        assert directory.contact_numbers(s, ann.id) == []
