"""What an external helpdesk does to Frontdesk's service requests: create or update a
request it knows by its own id, and set or clear a technician's "working on it now".

A helpdesk names things its own way: requests by its ticket id (``external_ref``, unique per
tenant and helpdesk) or by Frontdesk's ``SR-<number>``, technicians by username or e-mail.
Everything is done as the actor ``helpdesk:<name>`` through ``service.py``, so the same
state table, notes, "working on" rules and events apply as for people.

Functions take the ``Session`` and tenant id first and flush, never commit. This module
must never check permissions or authenticate the helpdesk (the API does).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from frontdesk.tickets import service
from frontdesk.tickets.actor import Actor
from frontdesk.tickets.directory import find_user, tenant_label
from frontdesk.tickets.errors import InvalidValue, UnknownRequest
from frontdesk.tickets.model import ServiceRequest, WorkingOn
from frontdesk.tickets.service import UNSET, Unset


def find_request(
    session: Session, tenant_id: int, helpdesk: str, ref: str, *, field: str = "request"
) -> ServiceRequest:
    """A request by ``SR-<number>`` or by the helpdesk's own id for it."""
    text = ref.strip()
    if text.upper().startswith("SR-"):
        return service.get_request(session, tenant_id, text)
    found = service.find_external_request(session, tenant_id, helpdesk, text)
    if found is None:
        raise UnknownRequest(
            f"helpdesk {helpdesk!r} has no request {text!r} in tenant "
            f"{tenant_label(session, tenant_id)}",
            field=field,
            fix="create it first (PUT with a title), or use Frontdesk's SR-<number>",
        )
    return found


def _title_for_new(external_ref: str, title: str | None) -> str:
    if not title:
        raise InvalidValue(
            f"helpdesk request {external_ref!r} is new, so it needs a title",
            field="title",
            fix="send a title (a few words about what is wrong)",
        )
    return title


def upsert_request(
    session: Session,
    tenant_id: int,
    helpdesk: str,
    external_ref: str,
    *,
    title: str | None = None,
    state: str | None = None,
    priority: str | None = None,
    assignee: str | Unset | None = UNSET,
    contact_id: int | Unset | None = UNSET,
    company_id: int | Unset | None = UNSET,
    note: str | None = None,
) -> tuple[ServiceRequest, bool]:
    """Create the request the helpdesk knows as ``external_ref``, or update it. Returns
    (request, created). ``assignee`` is a username or e-mail (None: unassign)."""
    who = Actor.from_helpdesk(helpdesk)
    if not external_ref.strip():
        raise InvalidValue("external_ref must not be empty", field="external_ref")
    assignee_id: int | Unset | None = (
        find_user(session, tenant_id, assignee, field="assignee").id
        if isinstance(assignee, str)
        else assignee
    )
    existing = service.find_external_request(session, tenant_id, helpdesk, external_ref)
    if existing is None:
        request = service.create_request(
            session,
            tenant_id,
            who,
            title=_title_for_new(external_ref, title),
            state=state or "new",
            priority=priority or "normal",
            assignee_id=None if isinstance(assignee_id, Unset) else assignee_id,
            contact_id=None if isinstance(contact_id, Unset) else contact_id,
            company_id=None if isinstance(company_id, Unset) else company_id,
            external_source=helpdesk,
            external_ref=external_ref.strip(),
            note=note,
        )
        return request, True
    request = service.update_request(
        session,
        tenant_id,
        who,
        existing.number,
        title=UNSET if title is None else title,
        state=UNSET if state is None else state,
        priority=UNSET if priority is None else priority,
        assignee_id=assignee_id,
        contact_id=contact_id,
        company_id=company_id,
    )
    if note:
        service.add_note(session, tenant_id, who, request.number, note)
    return request, False


def set_working_on(
    session: Session, tenant_id: int, helpdesk: str, technician: str, request: str
) -> WorkingOn:
    """Mark what ``technician`` (username or e-mail) works on now, as the helpdesk."""
    user = find_user(session, tenant_id, technician, field="technician")
    target = find_request(session, tenant_id, helpdesk, request)
    return service.set_working_on(
        session, tenant_id, Actor.from_helpdesk(helpdesk), user.id, target.number
    )


def clear_working_on(
    session: Session, tenant_id: int, helpdesk: str, technician: str
) -> ServiceRequest | None:
    user = find_user(session, tenant_id, technician, field="technician")
    return service.clear_working_on(session, tenant_id, Actor.from_helpdesk(helpdesk), user.id)
