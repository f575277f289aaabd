"""Service requests: create and change them, keep their notes, and the per-technician
"working on it now" mark.

Theory of operation. A request moves between the states in ``REQUEST_STATES`` only along
``ALLOWED_TRANSITIONS`` (a table tests and docs read); anything else raises
``InvalidTransition`` naming the request, both states and the allowed ones. Every change
takes an explicit actor (a user id, ``"helpdesk:<name>"`` or ``"system"``), writes a
``change`` note (who, what, when) and records an event on the session for the outbox
(see ``events.py``). Request numbers are per tenant and sequential (``SR-1001``, ...),
handed out from a counter row that is locked while it is bumped.

Each technician works on at most one request at a time (unique constraint on
``working_on.user_id``); setting a new one replaces the old one. Resolving a request clears
everyone's mark on it.

Functions take the ``Session`` and tenant id first and flush, never commit. This module
must never check permissions (the API and org/ do) and never do I/O beyond the session.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from frontdesk.store.models import utcnow
from frontdesk.tickets import events
from frontdesk.tickets.actor import Actor
from frontdesk.tickets.directory import get_company, get_contact, get_user, tenant_label
from frontdesk.tickets.errors import InvalidTransition, InvalidValue, UnknownRequest
from frontdesk.tickets.events import RequestSnapshot, request_ref
from frontdesk.tickets.model import (
    NOTE_KINDS,
    OPEN_STATES,
    REQUEST_PRIORITIES,
    REQUEST_STATES,
    RequestNote,
    ServiceRequest,
    ServiceRequestCounter,
    WorkingOn,
)

#: The first number a tenant's requests get.
FIRST_REQUEST_NUMBER = 1001
TITLE_MAX = 255

#: state -> states it may move to. "resolved" can only be reopened.
ALLOWED_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "new": frozenset({"open", "in_progress", "waiting", "resolved"}),
    "open": frozenset({"in_progress", "waiting", "resolved"}),
    "in_progress": frozenset({"open", "waiting", "resolved"}),
    "waiting": frozenset({"open", "in_progress", "resolved"}),
    "resolved": frozenset({"open"}),
}
#: Where a request goes when the customer gets back in touch (a call or a voicemail).
STATE_ON_CUSTOMER_CONTACT: Mapping[str, str] = {"waiting": "open"}
#: Where a request goes when a technician starts working on it now.
STATE_ON_WORKING_ON: Mapping[str, str] = {
    "new": "in_progress",
    "open": "in_progress",
    "waiting": "in_progress",
}

_REF = re.compile(r"^\s*(?:SR-?)?(\d{1,9})\s*$", re.IGNORECASE)


class Unset(enum.Enum):
    """Marks an argument that was not given (so None can mean "clear it")."""

    UNSET = 0


UNSET = Unset.UNSET


def parse_request_ref(ref: str | int) -> int:
    """``"SR-1042"``, ``"sr1042"``, ``"1042"`` or ``1042`` -> 1042; else ``InvalidValue``."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref
    match = _REF.match(str(ref))
    if not match:
        raise InvalidValue(
            f"{ref!r} is not a service request number: write it as SR-<digits>, e.g. SR-1042",
            field="request",
        )
    return int(match.group(1))


def get_request(session: Session, tenant_id: int, ref: str | int) -> ServiceRequest:
    """The request with this number in this tenant, or ``UnknownRequest``."""
    number = parse_request_ref(ref)
    request = session.scalar(
        select(ServiceRequest).where(
            ServiceRequest.tenant_id == tenant_id, ServiceRequest.number == number
        )
    )
    if request is None:
        raise UnknownRequest(
            f"service request {request_ref(number)} does not exist in tenant "
            f"{tenant_label(session, tenant_id)}",
            field="request",
        )
    return request


def find_external_request(
    session: Session, tenant_id: int, source: str, external_ref: str
) -> ServiceRequest | None:
    """The request a helpdesk knows as ``external_ref``, or None."""
    return session.scalar(
        select(ServiceRequest).where(
            ServiceRequest.tenant_id == tenant_id,
            ServiceRequest.external_source == source,
            ServiceRequest.external_ref == external_ref,
        )
    )


def list_requests(
    session: Session,
    tenant_id: int,
    *,
    states: tuple[str, ...] | None = None,
    contact_id: int | None = None,
    company_id: int | None = None,
    assignee_id: int | None = None,
    limit: int = 100,
) -> list[ServiceRequest]:
    """Requests of the tenant, most recently updated first."""
    query = select(ServiceRequest).where(ServiceRequest.tenant_id == tenant_id)
    if states is not None:
        for state in states:
            _check_choice(state, REQUEST_STATES, "state")
        query = query.where(ServiceRequest.state.in_(states))
    if contact_id is not None:
        query = query.where(ServiceRequest.contact_id == contact_id)
    if company_id is not None:
        query = query.where(ServiceRequest.company_id == company_id)
    if assignee_id is not None:
        query = query.where(ServiceRequest.assignee_id == assignee_id)
    query = query.order_by(ServiceRequest.updated_at.desc(), ServiceRequest.id.desc())
    return list(session.scalars(query.limit(limit)))


def _check_choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise InvalidValue(f"{field} {value!r} is not one of {', '.join(allowed)}", field=field)
    return value


def _check_title(title: str) -> str:
    cleaned = " ".join(title.split())
    if not cleaned:
        raise InvalidValue(
            "title must not be empty: say in a few words what is wrong", field="title"
        )
    if len(cleaned) > TITLE_MAX:
        raise InvalidValue(
            f"title is longer than {TITLE_MAX} characters: shorten it", field="title"
        )
    return cleaned


def _bump_counter(session: Session, tenant_id: int) -> int | None:
    bumped = session.execute(
        update(ServiceRequestCounter)
        .where(ServiceRequestCounter.tenant_id == tenant_id)
        .values(last_number=ServiceRequestCounter.last_number + 1)
        .returning(ServiceRequestCounter.last_number)
    ).scalar()
    return None if bumped is None else int(bumped)


def _next_number(session: Session, tenant_id: int) -> int:
    """Bump the tenant's counter; the UPDATE row-locks it until commit, so concurrent
    requests of one tenant get distinct numbers. The first request creates the row
    (INSERT ... ON CONFLICT DO NOTHING, so two first requests do not collide)."""
    number = _bump_counter(session, tenant_id)
    if number is not None:
        return number
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(ServiceRequestCounter)
        .values(tenant_id=tenant_id, last_number=FIRST_REQUEST_NUMBER - 1)
        .on_conflict_do_nothing()
    )
    number = _bump_counter(session, tenant_id)
    assert number is not None, "the counter row was just inserted"
    return number


def _author_id(actor: Actor) -> int | None:
    return actor.user_id if actor.kind == "user" else None


def create_request(
    session: Session,
    tenant_id: int,
    actor: Actor | int | str,
    *,
    title: str,
    contact_id: int | None = None,
    company_id: int | None = None,
    priority: str = "normal",
    assignee_id: int | None = None,
    state: str = "new",
    caller_number: str | None = None,
    external_source: str | None = None,
    external_ref: str | None = None,
    note: str | None = None,
) -> ServiceRequest:
    """A new request; ``note`` becomes its first note. Records ``RequestCreated``."""
    who = Actor.of(actor)
    _check_choice(state, REQUEST_STATES, "state")
    _check_choice(priority, REQUEST_PRIORITIES, "priority")
    if contact_id is not None:
        get_contact(session, tenant_id, contact_id)
    if company_id is not None:
        get_company(session, tenant_id, company_id)
    if assignee_id is not None:
        get_user(session, tenant_id, assignee_id, field="assignee_id")
    now = utcnow()
    request = ServiceRequest(
        tenant_id=tenant_id,
        number=_next_number(session, tenant_id),
        title=_check_title(title),
        state=state,
        priority=priority,
        contact_id=contact_id,
        company_id=company_id,
        assignee_id=assignee_id,
        caller_number=caller_number,
        external_source=external_source,
        external_ref=external_ref,
        created_by=str(who),
        created_at=now,
        updated_at=now,
        resolved_at=now if state == "resolved" else None,
    )
    session.add(request)
    session.flush()
    events.record(
        session,
        events.RequestCreated(
            tenant_id=tenant_id, request=RequestSnapshot.of(request), actor=str(who)
        ),
    )
    if note:
        add_note(session, tenant_id, who, request.number, note)
    return request


def _transition(request: ServiceRequest, state: str, session: Session) -> None:
    _check_choice(state, REQUEST_STATES, "state")
    if state == request.state:
        return
    allowed = ALLOWED_TRANSITIONS[request.state]
    if state not in allowed:
        raise InvalidTransition(
            f"service request {request_ref(request.number)} cannot go from {request.state} "
            f"to {state}: from {request.state} it can go to {', '.join(sorted(allowed))}",
            field="state",
        )
    request.state = state
    request.resolved_at = utcnow() if state == "resolved" else None
    if state == "resolved":
        for mark in session.scalars(select(WorkingOn).where(WorkingOn.request_id == request.id)):
            session.delete(mark)


def update_request(
    session: Session,
    tenant_id: int,
    actor: Actor | int | str,
    ref: str | int,
    *,
    title: str | Unset = UNSET,
    state: str | Unset = UNSET,
    priority: str | Unset = UNSET,
    assignee_id: int | Unset | None = UNSET,
    contact_id: int | Unset | None = UNSET,
    company_id: int | Unset | None = UNSET,
) -> ServiceRequest:
    """Change the given fields; records a ``change`` note and ``RequestUpdated`` when
    anything changed. Arguments left out stay as they are; None clears a reference."""
    who = Actor.of(actor)
    request = get_request(session, tenant_id, ref)
    before = _fields(request)
    if not isinstance(title, Unset):
        request.title = _check_title(title)
    if not isinstance(priority, Unset):
        request.priority = _check_choice(priority, REQUEST_PRIORITIES, "priority")
    if not isinstance(assignee_id, Unset):
        if assignee_id is not None:
            get_user(session, tenant_id, assignee_id, field="assignee_id")
        request.assignee_id = assignee_id
    if not isinstance(contact_id, Unset):
        if contact_id is not None:
            get_contact(session, tenant_id, contact_id)
        request.contact_id = contact_id
    if not isinstance(company_id, Unset):
        if company_id is not None:
            get_company(session, tenant_id, company_id)
        request.company_id = company_id
    if not isinstance(state, Unset):
        _transition(request, state, session)
    _finish_change(session, request, who, before)
    return request


def change_state(
    session: Session, tenant_id: int, actor: Actor | int | str, ref: str | int, state: str
) -> ServiceRequest:
    """Move a request to ``state`` (``InvalidTransition`` when not allowed)."""
    return update_request(session, tenant_id, actor, ref, state=state)


_TRACKED = ("title", "state", "priority", "assignee_id", "contact_id", "company_id")


def _fields(request: ServiceRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in _TRACKED}


def _finish_change(
    session: Session, request: ServiceRequest, who: Actor, before: dict[str, Any]
) -> dict[str, list[Any]]:
    after = _fields(request)
    changes = {k: [before[k], after[k]] for k in _TRACKED if before[k] != after[k]}
    if not changes:
        return changes
    request.updated_at = utcnow()
    session.flush()
    text = "; ".join(f"{k}: {old} -> {new}" for k, (old, new) in changes.items())
    _insert_note(session, request, who, "change", text)
    events.record(
        session,
        events.RequestUpdated(
            tenant_id=request.tenant_id,
            request=RequestSnapshot.of(request),
            actor=str(who),
            changes=changes,
        ),
    )
    return changes


def _insert_note(
    session: Session,
    request: ServiceRequest,
    who: Actor,
    kind: str,
    text: str,
    *,
    cdr_id: str | None = None,
    attachment_path: str | None = None,
) -> RequestNote:
    note = RequestNote(
        tenant_id=request.tenant_id,
        request_id=request.id,
        kind=kind,
        text=text,
        actor=str(who),
        author_user_id=_author_id(who),
        cdr_id=cdr_id,
        attachment_path=attachment_path,
        created_at=utcnow(),
    )
    session.add(note)
    session.flush()
    return note


def add_note(
    session: Session,
    tenant_id: int,
    actor: Actor | int | str,
    ref: str | int,
    text: str,
    *,
    kind: str = "note",
    cdr_id: str | None = None,
    attachment_path: str | None = None,
) -> RequestNote:
    """Add a note to a request. A call or voicemail note on a request waiting for the
    customer moves it back to open (the customer got back in touch)."""
    who = Actor.of(actor)
    _check_choice(kind, NOTE_KINDS, "kind")
    if not text.strip():
        raise InvalidValue("note text must not be empty", field="text")
    request = get_request(session, tenant_id, ref)
    note = _insert_note(
        session, request, who, kind, text.strip(), cdr_id=cdr_id, attachment_path=attachment_path
    )
    before = _fields(request)
    if kind in ("call", "voicemail", "missed_call") and request.state in STATE_ON_CUSTOMER_CONTACT:
        _transition(request, STATE_ON_CUSTOMER_CONTACT[request.state], session)
    request.updated_at = utcnow()
    _finish_change(session, request, who, before)
    events.record(
        session,
        events.RequestNoteAdded(
            tenant_id=tenant_id,
            request_ref=request_ref(request.number),
            note_id=note.id,
            kind=kind,
            text=note.text,
            actor=str(who),
            cdr_id=cdr_id,
            attachment_path=attachment_path,
        ),
    )
    return note


def list_notes(session: Session, tenant_id: int, ref: str | int) -> list[RequestNote]:
    """A request's notes, oldest first."""
    request = get_request(session, tenant_id, ref)
    query = select(RequestNote).where(RequestNote.request_id == request.id)
    return list(session.scalars(query.order_by(RequestNote.created_at, RequestNote.id)))


# --- working on it now ---------------------------------------------------------------------


def working_on(session: Session, tenant_id: int, technician_id: int) -> ServiceRequest | None:
    """The request the technician is working on right now, or None."""
    return session.scalar(
        select(ServiceRequest)
        .join(WorkingOn, WorkingOn.request_id == ServiceRequest.id)
        .where(WorkingOn.user_id == technician_id, WorkingOn.tenant_id == tenant_id)
    )


def set_working_on(
    session: Session,
    tenant_id: int,
    actor: Actor | int | str,
    technician_id: int,
    ref: str | int,
    *,
    since: datetime | None = None,
) -> WorkingOn:
    """Mark ``ref`` as what the technician works on now, replacing any earlier mark.

    A resolved request cannot be worked on (reopen it first); a new, open or waiting
    request moves to in_progress.
    """
    who = Actor.of(actor)
    get_user(session, tenant_id, technician_id, field="technician")
    request = get_request(session, tenant_id, ref)
    if request.state == "resolved":
        raise InvalidTransition(
            f"service request {request_ref(request.number)} is resolved: reopen it before "
            "working on it",
            field="request",
        )
    mark = session.scalar(select(WorkingOn).where(WorkingOn.user_id == technician_id))
    previous = None
    if mark is None:
        mark = WorkingOn(
            tenant_id=tenant_id,
            user_id=technician_id,
            request_id=request.id,
            since=since or utcnow(),
            set_by=str(who),
        )
        session.add(mark)
    elif mark.request_id != request.id:
        old = session.get(ServiceRequest, mark.request_id)
        previous = request_ref(old.number) if old is not None else None
        mark.request_id, mark.since, mark.set_by = request.id, since or utcnow(), str(who)
    session.flush()
    before = _fields(request)
    if request.state in STATE_ON_WORKING_ON:
        _transition(request, STATE_ON_WORKING_ON[request.state], session)
    _finish_change(session, request, who, before)
    events.record(
        session,
        events.WorkingOnSet(
            tenant_id=tenant_id,
            technician_id=technician_id,
            request_ref=request_ref(request.number),
            previous_ref=previous,
            actor=str(who),
        ),
    )
    return mark


def clear_working_on(
    session: Session, tenant_id: int, actor: Actor | int | str, technician_id: int
) -> ServiceRequest | None:
    """Remove the technician's mark; returns the request they were working on, if any."""
    who = Actor.of(actor)
    get_user(session, tenant_id, technician_id, field="technician")
    mark = session.scalar(select(WorkingOn).where(WorkingOn.user_id == technician_id))
    if mark is None:
        return None
    request = session.get(ServiceRequest, mark.request_id)
    session.delete(mark)
    session.flush()
    if request is not None:
        events.record(
            session,
            events.WorkingOnCleared(
                tenant_id=tenant_id,
                technician_id=technician_id,
                request_ref=request_ref(request.number),
                actor=str(who),
            ),
        )
    return request


def is_open(request: ServiceRequest) -> bool:
    return request.state in OPEN_STATES
