"""The tenant's directory of callers: companies, contacts, their phone numbers, and the
outside numbers of co-workers (the tenant's own users).

Every function takes an open ``Session`` and the tenant id first and works inside the
caller's transaction (it flushes, never commits). Numbers are normalised to E.164 with the
tenant's ``phone_region`` before they are stored; a number that cannot be parsed is refused
with ``PhoneNumberError``. Rows of another tenant are never visible: asking for one is the
same as asking for one that does not exist.

This module must never check permissions or write audit entries (the API and org/ do), and
never run on the SIP hot path (the call engine reads through ``lookup.caller_lookup``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from frontdesk.store.models import Tenant, User
from frontdesk.tickets.errors import (
    Conflict,
    InvalidValue,
    NotFound,
    UnknownCompany,
    UnknownContact,
    UnknownUser,
)
from frontdesk.tickets.model import (
    Company,
    CompanyNumber,
    Contact,
    ContactCompany,
    ContactNumber,
    CoworkerNumber,
)
from frontdesk.tickets.numbers import normalize, tickets_setting


def get_tenant(session: Session, tenant_id: int) -> Tenant:
    """The tenant, or ``NotFound`` naming the id."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant #{tenant_id} does not exist", field="tenant")
    return tenant


def tenant_label(session: Session, tenant_id: int) -> str:
    """The tenant's slug for messages (``#<id>`` when the tenant is gone)."""
    tenant = session.get(Tenant, tenant_id)
    return tenant.slug if tenant is not None else f"#{tenant_id}"


def tenant_region(session: Session, tenant_id: int) -> str:
    """The region numbers without a country code are read in (setting ``phone_region``)."""
    return str(tickets_setting(get_tenant(session, tenant_id), "phone_region"))


def get_user(session: Session, tenant_id: int, user_id: int, *, field: str = "user") -> User:
    """A co-worker (user of this tenant), or ``UnknownUser``."""
    user = session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise UnknownUser(
            f"user #{user_id} does not exist in tenant {tenant_label(session, tenant_id)}: "
            "pick one of the tenant's users",
            field=field,
        )
    return user


def find_user(session: Session, tenant_id: int, name: str, *, field: str = "user") -> User:
    """A co-worker by username or e-mail (what an external helpdesk knows them by)."""
    user = session.scalar(
        select(User).where(
            User.tenant_id == tenant_id, (User.username == name) | (User.email == name)
        )
    )
    if user is None:
        raise UnknownUser(
            f"no user with username or e-mail {name!r} in tenant "
            f"{tenant_label(session, tenant_id)}",
            field=field,
        )
    return user


# --- companies -----------------------------------------------------------------------------


def _clean_name(name: str, field: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidValue(f"{field} must not be empty", field=field)
    return cleaned


def get_company(session: Session, tenant_id: int, company_id: int) -> Company:
    company = session.get(Company, company_id)
    if company is None or company.tenant_id != tenant_id:
        raise UnknownCompany(
            f"company #{company_id} does not exist in tenant {tenant_label(session, tenant_id)}",
            field="company_id",
        )
    return company


def _refuse_duplicate_company(
    session: Session, tenant_id: int, name: str, *, but: int | None = None
) -> None:
    query = select(Company.id).where(Company.tenant_id == tenant_id, Company.name == name)
    if but is not None:
        query = query.where(Company.id != but)
    existing = session.scalar(query)
    if existing is not None:
        raise Conflict(
            f"company {name!r} already exists (#{existing}): pick another name or update it",
            field="name",
        )


def create_company(
    session: Session,
    tenant_id: int,
    name: str,
    *,
    numbers: Sequence[str] = (),
    external_ref: str | None = None,
) -> Company:
    """A new company with its phone numbers; the name is unique per tenant."""
    name = _clean_name(name, "name")
    _refuse_duplicate_company(session, tenant_id, name)
    company = Company(tenant_id=tenant_id, name=name, external_ref=external_ref)
    session.add(company)
    session.flush()
    for index, raw in enumerate(numbers):
        add_company_number(session, tenant_id, company.id, raw, field=f"numbers.{index}")
    return company


def rename_company(session: Session, tenant_id: int, company_id: int, name: str) -> Company:
    company = get_company(session, tenant_id, company_id)
    name = _clean_name(name, "name")
    _refuse_duplicate_company(session, tenant_id, name, but=company_id)
    company.name = name
    session.flush()
    return company


def delete_company(session: Session, tenant_id: int, company_id: int) -> None:
    """Delete a company; its requests keep existing without a company."""
    session.delete(get_company(session, tenant_id, company_id))
    session.flush()


def list_companies(session: Session, tenant_id: int, *, search: str | None = None) -> list[Company]:
    query = select(Company).where(Company.tenant_id == tenant_id).order_by(Company.name)
    if search:
        query = query.where(Company.name.ilike(f"%{search}%"))
    return list(session.scalars(query))


def add_company_number(
    session: Session,
    tenant_id: int,
    company_id: int,
    raw: str,
    label: str | None = None,
    *,
    field: str = "number",
) -> CompanyNumber:
    """Add a number to a company (adding one it already has returns the existing row)."""
    get_company(session, tenant_id, company_id)
    e164 = normalize(raw, tenant_region(session, tenant_id), field=field)
    row = session.scalar(
        select(CompanyNumber).where(
            CompanyNumber.company_id == company_id, CompanyNumber.e164 == e164
        )
    )
    if row is None:
        row = CompanyNumber(tenant_id=tenant_id, company_id=company_id, e164=e164, label=label)
        session.add(row)
        session.flush()
    return row


def company_numbers(session: Session, company_id: int) -> list[str]:
    query = select(CompanyNumber.e164).where(CompanyNumber.company_id == company_id)
    return list(session.scalars(query.order_by(CompanyNumber.id)))


def remove_company_number(session: Session, tenant_id: int, company_id: int, raw: str) -> bool:
    get_company(session, tenant_id, company_id)
    e164 = normalize(raw, tenant_region(session, tenant_id))
    result = session.execute(
        delete(CompanyNumber).where(
            CompanyNumber.company_id == company_id, CompanyNumber.e164 == e164
        )
    )
    return bool(getattr(result, "rowcount", 0))


# --- contacts ------------------------------------------------------------------------------


def get_contact(session: Session, tenant_id: int, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None or contact.tenant_id != tenant_id:
        raise UnknownContact(
            f"contact #{contact_id} does not exist in tenant {tenant_label(session, tenant_id)}",
            field="contact_id",
        )
    return contact


def create_contact(
    session: Session,
    tenant_id: int,
    name: str,
    *,
    email: str | None = None,
    company_ids: Iterable[int] = (),
    numbers: Sequence[str] = (),
    external_ref: str | None = None,
) -> Contact:
    """A new contact, member of ``company_ids``, with phone numbers ``numbers``."""
    contact = Contact(
        tenant_id=tenant_id,
        name=_clean_name(name, "name"),
        email=email,
        external_ref=external_ref,
    )
    session.add(contact)
    session.flush()
    set_contact_companies(session, tenant_id, contact.id, company_ids)
    for index, raw in enumerate(numbers):
        add_contact_number(session, tenant_id, contact.id, raw, field=f"numbers.{index}")
    return contact


def update_contact(
    session: Session,
    tenant_id: int,
    contact_id: int,
    *,
    name: str | None = None,
    email: str | None = None,
) -> Contact:
    contact = get_contact(session, tenant_id, contact_id)
    if name is not None:
        contact.name = _clean_name(name, "name")
    if email is not None:
        contact.email = email or None
    session.flush()
    return contact


def delete_contact(session: Session, tenant_id: int, contact_id: int) -> None:
    """Delete a contact; their requests keep existing without a contact."""
    session.delete(get_contact(session, tenant_id, contact_id))
    session.flush()


def list_contacts(
    session: Session, tenant_id: int, *, company_id: int | None = None, search: str | None = None
) -> list[Contact]:
    query = select(Contact).where(Contact.tenant_id == tenant_id).order_by(Contact.name)
    if company_id is not None:
        query = query.join(ContactCompany, ContactCompany.contact_id == Contact.id).where(
            ContactCompany.company_id == company_id
        )
    if search:
        query = query.where(Contact.name.ilike(f"%{search}%"))
    return list(session.scalars(query))


def set_contact_companies(
    session: Session, tenant_id: int, contact_id: int, company_ids: Iterable[int]
) -> list[int]:
    """Make the contact a member of exactly ``company_ids``; returns them sorted."""
    get_contact(session, tenant_id, contact_id)
    wanted = sorted(set(company_ids))
    for company_id in wanted:
        get_company(session, tenant_id, company_id)
    session.execute(delete(ContactCompany).where(ContactCompany.contact_id == contact_id))
    session.add_all(
        ContactCompany(contact_id=contact_id, company_id=c, tenant_id=tenant_id) for c in wanted
    )
    session.flush()
    return wanted


def contact_company_ids(session: Session, contact_id: int) -> list[int]:
    query = select(ContactCompany.company_id).where(ContactCompany.contact_id == contact_id)
    return sorted(session.scalars(query))


def add_contact_number(
    session: Session,
    tenant_id: int,
    contact_id: int,
    raw: str,
    label: str | None = None,
    *,
    field: str = "number",
) -> ContactNumber:
    """Add a number to a contact (adding one they already have returns the existing row).

    The same number may belong to several contacts (a shared office line); the caller
    lookup then reports the call as ambiguous.
    """
    get_contact(session, tenant_id, contact_id)
    e164 = normalize(raw, tenant_region(session, tenant_id), field=field)
    row = session.scalar(
        select(ContactNumber).where(
            ContactNumber.contact_id == contact_id, ContactNumber.e164 == e164
        )
    )
    if row is None:
        row = ContactNumber(tenant_id=tenant_id, contact_id=contact_id, e164=e164, label=label)
        session.add(row)
        session.flush()
    return row


def contact_numbers(session: Session, contact_id: int) -> list[str]:
    query = select(ContactNumber.e164).where(ContactNumber.contact_id == contact_id)
    return list(session.scalars(query.order_by(ContactNumber.id)))


def remove_contact_number(session: Session, tenant_id: int, contact_id: int, raw: str) -> bool:
    get_contact(session, tenant_id, contact_id)
    e164 = normalize(raw, tenant_region(session, tenant_id))
    result = session.execute(
        delete(ContactNumber).where(
            ContactNumber.contact_id == contact_id, ContactNumber.e164 == e164
        )
    )
    return bool(getattr(result, "rowcount", 0))


# --- co-workers ----------------------------------------------------------------------------


def add_coworker_number(
    session: Session, tenant_id: int, user_id: int, raw: str, label: str | None = None
) -> CoworkerNumber:
    """Record an outside number (mobile, home office) of one of the tenant's users."""
    get_user(session, tenant_id, user_id, field="user_id")
    e164 = normalize(raw, tenant_region(session, tenant_id))
    row = session.scalar(
        select(CoworkerNumber).where(CoworkerNumber.user_id == user_id, CoworkerNumber.e164 == e164)
    )
    if row is None:
        row = CoworkerNumber(tenant_id=tenant_id, user_id=user_id, e164=e164, label=label)
        session.add(row)
        session.flush()
    return row


def coworker_numbers(session: Session, user_id: int) -> list[str]:
    query = select(CoworkerNumber.e164).where(CoworkerNumber.user_id == user_id)
    return list(session.scalars(query.order_by(CoworkerNumber.id)))
