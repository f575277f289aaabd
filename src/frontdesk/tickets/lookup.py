"""Caller lookup: caller ID -> co-worker? -> contact(s) -> company(ies) -> open service
requests, with each request's assignee and whether someone is "working on it now".

This is what the screen pop shows whoever answers, and what the routing layer's technician
shield reads (``CallerLookup.rings_through(technician_id)``). Matches are reported, never
guessed: a number shared by two contacts, or a contact working for two companies, gives
``ambiguous=True`` with the reason, and every candidate with its open requests.

Fast: a handful of index probes on ``(tenant_id, e164)`` and ``(tenant_id, contact_id,
state)``; no full scans. This module only reads; it must never write, and never raise for
a caller ID it cannot read (``anonymous``, an extension, a SIP URI) - that is simply no
match.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from frontdesk.store.models import Extension, User
from frontdesk.tickets.directory import tenant_region
from frontdesk.tickets.events import request_ref
from frontdesk.tickets.model import (
    OPEN_STATES,
    Company,
    CompanyNumber,
    Contact,
    ContactCompany,
    ContactNumber,
    CoworkerNumber,
    ServiceRequest,
    WorkingOn,
)
from frontdesk.tickets.numbers import caller_e164, caller_user_part

#: At most this many open requests are listed (most recently updated first).
MAX_OPEN_REQUESTS = 50


@dataclass(frozen=True, slots=True)
class CoworkerMatch:
    """One of the tenant's users; ``via`` is ``"extension"`` or ``"number"``."""

    user_id: int | None
    name: str
    via: str
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class ContactMatch:
    id: int
    name: str
    company_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CompanyMatch:
    """``via`` is ``"contact"`` (a matched contact works there) or ``"number"`` (the number
    is one of the company's own)."""

    id: int
    name: str
    via: str


@dataclass(frozen=True, slots=True)
class OpenRequest:
    id: int
    ref: str
    title: str
    state: str
    priority: str
    contact_id: int | None
    company_id: int | None
    assignee_id: int | None
    assignee_name: str | None
    #: The assignee's login and (lowest) extension, what the routing directory knows.
    assignee_username: str | None
    assignee_extension: str | None
    #: True when the assignee is working on this request right now.
    assignee_working_on_it: bool
    #: Every technician working on this request right now.
    working_on_by: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CallerLookup:
    """Who is calling, as far as the tenant's data can tell."""

    caller: str
    #: The caller as E.164, or None when it is not a phone number.
    number: str | None
    is_coworker: bool
    coworkers: tuple[CoworkerMatch, ...]
    contacts: tuple[ContactMatch, ...]
    companies: tuple[CompanyMatch, ...]
    ambiguous: bool
    ambiguity: str | None
    open_requests: tuple[OpenRequest, ...]

    @property
    def contact(self) -> ContactMatch | None:
        """The one contact calling, or None when there is none or more than one."""
        return self.contacts[0] if len(self.contacts) == 1 else None

    @property
    def company(self) -> CompanyMatch | None:
        """The one company calling, or None when there is none or more than one."""
        return self.companies[0] if len(self.companies) == 1 else None

    def rings_through(self, technician_id: int) -> bool:
        """Technician shield: co-workers always ring through; customers only when the
        technician is working right now on one of the caller's open requests."""
        if self.is_coworker:
            return True
        return any(technician_id in r.working_on_by for r in self.open_requests)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the screen pop and events."""
        return asdict(self)


def caller_lookup(session: Session, tenant_id: int, caller: str) -> CallerLookup:
    """Look up ``caller`` (a number, an extension or a SIP URI) in tenant ``tenant_id``."""
    number = caller_e164(caller, tenant_region(session, tenant_id))
    coworkers = _coworkers(session, tenant_id, caller_user_part(caller), number)
    contacts: tuple[ContactMatch, ...] = ()
    companies: tuple[CompanyMatch, ...] = ()
    if number is not None:
        contacts = _contacts(session, tenant_id, number)
        companies = _companies(session, tenant_id, number, contacts)
    reason = _ambiguity(number, contacts, companies)
    requests = _open_requests(
        session,
        tenant_id,
        [c.id for c in contacts],
        [c.id for c in companies],
    )
    return CallerLookup(
        caller=caller,
        number=number,
        is_coworker=bool(coworkers),
        coworkers=coworkers,
        contacts=contacts,
        companies=companies,
        ambiguous=reason is not None,
        ambiguity=reason,
        open_requests=requests,
    )


def _coworkers(
    session: Session, tenant_id: int, user_part: str, number: str | None
) -> tuple[CoworkerMatch, ...]:
    found: list[CoworkerMatch] = []
    if user_part:
        extensions = session.execute(
            select(Extension.number, Extension.display_name, Extension.user_id).where(
                Extension.tenant_id == tenant_id, Extension.number == user_part
            )
        )
        found += [CoworkerMatch(uid, name, "extension", ext) for ext, name, uid in extensions]
    if number is not None:
        rows = session.execute(
            select(User.id, User.display_name)
            .join(CoworkerNumber, CoworkerNumber.user_id == User.id)
            .where(CoworkerNumber.tenant_id == tenant_id, CoworkerNumber.e164 == number)
            .order_by(User.id)
        )
        found += [CoworkerMatch(uid, name, "number") for uid, name in rows]
    return tuple(found)


def _contacts(session: Session, tenant_id: int, number: str) -> tuple[ContactMatch, ...]:
    rows = list(
        session.execute(
            select(Contact.id, Contact.name)
            .join(ContactNumber, ContactNumber.contact_id == Contact.id)
            .where(ContactNumber.tenant_id == tenant_id, ContactNumber.e164 == number)
            .distinct()
            .order_by(Contact.id)
        )
    )
    if not rows:
        return ()
    memberships: dict[int, list[int]] = {contact_id: [] for contact_id, _ in rows}
    for contact_id, company_id in session.execute(
        select(ContactCompany.contact_id, ContactCompany.company_id)
        .where(ContactCompany.contact_id.in_(list(memberships)))
        .order_by(ContactCompany.company_id)
    ):
        memberships[contact_id].append(company_id)
    return tuple(ContactMatch(cid, name, tuple(memberships[cid])) for cid, name in rows)


def _companies(
    session: Session, tenant_id: int, number: str, contacts: tuple[ContactMatch, ...]
) -> tuple[CompanyMatch, ...]:
    via_contact = {company_id for c in contacts for company_id in c.company_ids}
    direct = set(
        session.scalars(
            select(CompanyNumber.company_id).where(
                CompanyNumber.tenant_id == tenant_id, CompanyNumber.e164 == number
            )
        )
    )
    wanted = via_contact | direct
    if not wanted:
        return ()
    rows = session.execute(
        select(Company.id, Company.name).where(Company.id.in_(wanted)).order_by(Company.id)
    )
    return tuple(
        CompanyMatch(cid, name, "contact" if cid in via_contact else "number") for cid, name in rows
    )


def _ambiguity(
    number: str | None, contacts: tuple[ContactMatch, ...], companies: tuple[CompanyMatch, ...]
) -> str | None:
    if len(contacts) > 1:
        names = ", ".join(f"{c.name} (#{c.id})" for c in contacts)
        return f"number {number} belongs to {len(contacts)} contacts: {names}"
    if len(companies) > 1:
        names = ", ".join(f"{c.name} (#{c.id})" for c in companies)
        who = f"contact {contacts[0].name} (#{contacts[0].id})" if contacts else f"number {number}"
        return f"{who} matches {len(companies)} companies: {names}"
    return None


def _assignees(
    session: Session, user_ids: list[int]
) -> dict[int, tuple[str | None, str | None, str | None]]:
    """user id -> (display name, username, lowest extension number)."""
    if not user_ids:
        return {}
    extensions: dict[int, str] = {}
    for user_id, number in session.execute(
        select(Extension.user_id, Extension.number)
        .where(Extension.user_id.in_(user_ids))
        .order_by(Extension.number.desc())
    ):
        if user_id is not None:
            extensions[user_id] = number
    return {
        user_id: (name, username, extensions.get(user_id))
        for user_id, name, username in session.execute(
            select(User.id, User.display_name, User.username).where(User.id.in_(user_ids))
        )
    }


def _open_requests(
    session: Session, tenant_id: int, contact_ids: list[int], company_ids: list[int]
) -> tuple[OpenRequest, ...]:
    if not contact_ids and not company_ids:
        return ()
    matches = []
    if contact_ids:
        matches.append(ServiceRequest.contact_id.in_(contact_ids))
    if company_ids:
        matches.append(ServiceRequest.company_id.in_(company_ids))
    rows = list(
        session.scalars(
            select(ServiceRequest)
            .where(
                ServiceRequest.tenant_id == tenant_id,
                ServiceRequest.state.in_(OPEN_STATES),
                or_(*matches),
            )
            .order_by(ServiceRequest.updated_at.desc(), ServiceRequest.id.desc())
            .limit(MAX_OPEN_REQUESTS)
        )
    )
    if not rows:
        return ()
    working: dict[int, list[int]] = {r.id: [] for r in rows}
    for request_id, user_id in session.execute(
        select(WorkingOn.request_id, WorkingOn.user_id)
        .where(WorkingOn.request_id.in_(list(working)))
        .order_by(WorkingOn.user_id)
    ):
        working[request_id].append(user_id)
    people = _assignees(session, sorted({r.assignee_id for r in rows if r.assignee_id}))
    nobody: tuple[str | None, str | None, str | None] = (None, None, None)
    return tuple(
        OpenRequest(
            id=r.id,
            ref=request_ref(r.number),
            title=r.title,
            state=r.state,
            priority=r.priority,
            contact_id=r.contact_id,
            company_id=r.company_id,
            assignee_id=r.assignee_id,
            assignee_name=people.get(r.assignee_id or 0, nobody)[0],
            assignee_username=people.get(r.assignee_id or 0, nobody)[1],
            assignee_extension=people.get(r.assignee_id or 0, nobody)[2],
            assignee_working_on_it=r.assignee_id in working[r.id],
            working_on_by=tuple(working[r.id]),
        )
        for r in rows
    )
