"""Service requests from calls: what the call engine calls when someone acts on a live
call (create a request, add the call to one, transfer, send to voicemail), when a
voicemail is left, and when a call is missed.

Each function returns what the engine needs to finish the job: the request and note
written, and a ``CallAction`` (who, what, when) to store on the CDR
(``cdr_extra_with(cdr.extra, action)``). The live-call part (the SIP transfer, the
voicemail recording) is the engine's; this module only records and files.

Rules. Whoever answers decides: ``request_from_call`` refuses an ambiguous caller
(``AmbiguousContact`` naming the candidates and which argument settles it) instead of
guessing. Voicemails and missed calls have nobody to ask, so they file leniently: an open
request of the one matching contact gets a note (the most recently updated one if there
are several), otherwise a new request is opened, and any ambiguity is written in the note.

Functions take the ``Session`` and tenant id first and flush, never commit; they must never
touch the call engine, the network or the recording file itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from frontdesk.store.models import Cdr, utcnow
from frontdesk.tickets import events
from frontdesk.tickets.actor import SYSTEM, Actor
from frontdesk.tickets.directory import (
    contact_company_ids,
    get_company,
    get_contact,
    get_tenant,
)
from frontdesk.tickets.errors import AmbiguousContact
from frontdesk.tickets.events import request_ref
from frontdesk.tickets.lookup import CallerLookup, caller_lookup
from frontdesk.tickets.model import OPEN_STATES, RequestNote, ServiceRequest
from frontdesk.tickets.numbers import TICKETS_SETTING_DEFAULTS, display, tickets_setting
from frontdesk.tickets.service import add_note, create_request, get_request, list_requests

CallActionName = Literal[
    "request_created",
    "note_added",
    "transferred",
    "sent_to_voicemail",
    "voicemail_filed",
    "missed_call_filed",
]
CDR_EXTRA_KEY = "ticket_actions"


@dataclass(frozen=True, slots=True)
class CallAction:
    """One action on a call, as recorded on its CDR."""

    action: CallActionName
    actor: str
    at: datetime
    cdr_id: str | None
    call_id: str | None
    request_ref: str | None = None
    target: str | None = None

    def as_cdr_entry(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "request": self.request_ref,
            "target": self.target,
        }


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The request a call was filed under; ``created`` when it is new, ``reason`` says why
    this request (for the screen pop and the log)."""

    request: ServiceRequest
    note: RequestNote
    created: bool
    reason: str
    action: CallAction


def cdr_extra_with(extra: dict[str, Any] | None, action: CallAction) -> dict[str, Any]:
    """A copy of a CDR's ``extra`` with ``action`` appended under ``ticket_actions``."""
    updated = dict(extra or {})
    updated[CDR_EXTRA_KEY] = [*updated.get(CDR_EXTRA_KEY, []), action.as_cdr_entry()]
    return updated


def store_action_on_cdr(session: Session, cdr_id: str, action: CallAction) -> bool:
    """Append ``action`` to the stored CDR ``cdr_id`` (a call that already ended; a live
    call's actions travel with its next CDR record instead). False: no such CDR."""
    row = session.get(Cdr, cdr_id)
    if row is None:
        return False
    row.extra = cdr_extra_with(row.extra, action)
    session.flush()
    return True


def voicemail_files_request(
    settings: Mapping[str, Any], mailbox: str, *, via_main_number: bool
) -> bool:
    """Does a voicemail left in ``mailbox`` become a service request? With the tenant
    setting ``voicemail_requests`` = ``"front_desk"`` (default): when the caller reached it
    through the main number (the front desk's flow), or the mailbox is listed in
    ``voicemail_request_mailboxes`` (a group's, the service manager's); ``"all"``: every
    voicemail; ``"off"``: none."""
    mode = settings.get("voicemail_requests", TICKETS_SETTING_DEFAULTS["voicemail_requests"])
    if mode == "all":
        return True
    if mode == "off":
        return False
    listed = settings.get(
        "voicemail_request_mailboxes", TICKETS_SETTING_DEFAULTS["voicemail_request_mailboxes"]
    )
    return via_main_number or mailbox in [str(m) for m in listed or ()]


def _who_is_calling(lookup: CallerLookup) -> str:
    number = display(lookup.number) if lookup.number else (lookup.caller or "anonymous")
    if lookup.contact is not None:
        return f"{lookup.contact.name} ({number})"
    if lookup.company is not None:
        return f"{lookup.company.name} ({number})"
    return number


def _act(
    session: Session,
    tenant_id: int,
    who: Actor,
    action: CallActionName,
    *,
    cdr_id: str | None,
    call_id: str | None,
    ref: str | None = None,
    target: str | None = None,
) -> CallAction:
    done = CallAction(action, str(who), utcnow(), cdr_id, call_id, ref, target)
    events.record(
        session,
        events.CallActionTaken(
            tenant_id=tenant_id,
            call_id=call_id,
            cdr_id=cdr_id,
            action=action,
            actor=str(who),
            request_ref=ref,
            target=target,
        ),
    )
    return done


def _names(items: Any) -> str:
    return ", ".join(f"{i.name} (#{i.id})" for i in items)


def _party(
    session: Session,
    tenant_id: int,
    lookup: CallerLookup,
    contact_id: int | None,
    company_id: int | None,
) -> tuple[int | None, int | None]:
    """The contact and company a new request is for; ambiguity is an error here."""
    companies: list[tuple[int, str]] = [(c.id, c.name) for c in lookup.companies]
    if contact_id is None:
        if len(lookup.contacts) > 1:
            raise AmbiguousContact(
                f"caller {lookup.number} matches {len(lookup.contacts)} contacts: "
                f"{_names(lookup.contacts)}; pass contact_id to say which one",
                field="contact_id",
            )
        contact_id = lookup.contact.id if lookup.contact else None
    elif lookup.contact is None or lookup.contact.id != contact_id:
        contact = get_contact(session, tenant_id, contact_id)
        member_of = contact_company_ids(session, contact.id)
        hinted = [(c.id, c.name) for c in lookup.companies if c.id in member_of]
        companies = hinted or [
            (cid, get_company(session, tenant_id, cid).name) for cid in member_of
        ]
    if company_id is None and len(companies) > 1:
        listed = ", ".join(f"{name} (#{cid})" for cid, name in companies)
        raise AmbiguousContact(
            f"caller {lookup.number} matches {len(companies)} companies: {listed}; "
            "pass company_id to say which one",
            field="company_id",
        )
    if company_id is None and companies:
        company_id = companies[0][0]
    return contact_id, company_id


def request_from_call(
    session: Session,
    tenant_id: int,
    actor: Actor | int | str,
    *,
    caller: str,
    cdr_id: str | None = None,
    call_id: str | None = None,
    title: str | None = None,
    contact_id: int | None = None,
    company_id: int | None = None,
    priority: str = "normal",
    assignee_id: int | None = None,
    note: str | None = None,
) -> CallOutcome:
    """Open a new request from a live call; the call becomes its first note."""
    who = Actor.of(actor)
    lookup = caller_lookup(session, tenant_id, caller)
    contact_id, company_id = _party(session, tenant_id, lookup, contact_id, company_id)
    caller_name = _who_is_calling(lookup)
    request = create_request(
        session,
        tenant_id,
        who,
        title=title or f"Call from {caller_name}",
        contact_id=contact_id,
        company_id=company_id,
        priority=priority,
        assignee_id=assignee_id,
        caller_number=lookup.number if contact_id is None else None,
    )
    text = f"Call from {caller_name}; request opened by {who}" + (f": {note}" if note else "")
    added = add_note(session, tenant_id, who, request.number, text, kind="call", cdr_id=cdr_id)
    ref = request_ref(request.number)
    action = _act(
        session, tenant_id, who, "request_created", cdr_id=cdr_id, call_id=call_id, ref=ref
    )
    return CallOutcome(request, added, True, "opened from the call", action)


def note_from_call(
    session: Session,
    tenant_id: int,
    actor: Actor | int | str,
    ref: str | int,
    *,
    caller: str,
    cdr_id: str | None = None,
    call_id: str | None = None,
    text: str | None = None,
) -> CallOutcome:
    """Add the live call as a note to an existing request (``UnknownRequest`` if none)."""
    who = Actor.of(actor)
    request = get_request(session, tenant_id, ref)
    lookup = caller_lookup(session, tenant_id, caller)
    body = f"Call from {_who_is_calling(lookup)}, noted by {who}" + (f": {text}" if text else "")
    added = add_note(session, tenant_id, who, request.number, body, kind="call", cdr_id=cdr_id)
    action = _act(
        session,
        tenant_id,
        who,
        "note_added",
        cdr_id=cdr_id,
        call_id=call_id,
        ref=request_ref(request.number),
    )
    return CallOutcome(request, added, False, "added to the request chosen", action)


def record_call_action(
    session: Session,
    tenant_id: int,
    actor: Actor | int | str,
    action: Literal["transferred", "sent_to_voicemail"],
    *,
    cdr_id: str | None = None,
    call_id: str | None = None,
    target: str | None = None,
    ref: str | int | None = None,
) -> CallAction:
    """Record a transfer (to ``target``, e.g. the service manager) or a send-to-voicemail
    the engine carried out; with ``ref`` the request gets a call note too."""
    who = Actor.of(actor)
    request_label = None
    if ref is not None:
        request = get_request(session, tenant_id, ref)
        request_label = request_ref(request.number)
        what = f"transferred to {target}" if action == "transferred" else "sent to voicemail"
        add_note(
            session,
            tenant_id,
            who,
            request.number,
            f"Call {what} by {who}",
            kind="call",
            cdr_id=cdr_id,
        )
    return _act(
        session,
        tenant_id,
        who,
        action,
        cdr_id=cdr_id,
        call_id=call_id,
        ref=request_label,
        target=target,
    )


def _open_request_of(
    session: Session, tenant_id: int, lookup: CallerLookup
) -> tuple[ServiceRequest, str] | None:
    """The open request of the one calling contact (most recently updated), and why."""
    contact = lookup.contact
    if contact is None:
        return None
    open_ones = list_requests(
        session, tenant_id, states=OPEN_STATES, contact_id=contact.id, limit=50
    )
    if not open_ones:
        return None
    if len(open_ones) == 1:
        return open_ones[0], f"the open request of {contact.name}"
    return open_ones[0], (
        f"the most recently updated of {len(open_ones)} open requests of {contact.name}"
    )


def _new_unattended_request(
    session: Session,
    tenant_id: int,
    who: Actor,
    lookup: CallerLookup,
    kind: Literal["voicemail", "missed_call"],
) -> ServiceRequest:
    """A new request for the caller: their contact, and company when there is only one."""
    label = "Voicemail" if kind == "voicemail" else "Missed call"
    contact = lookup.contact
    company = lookup.company
    if company is None and contact is not None and len(contact.company_ids) == 1:
        company = next((c for c in lookup.companies if c.id == contact.company_ids[0]), None)
    return create_request(
        session,
        tenant_id,
        who,
        title=f"{label} from {_who_is_calling(lookup)}",
        contact_id=contact.id if contact else None,
        company_id=company.id if company else None,
        caller_number=lookup.number if contact is None else None,
    )


def _file_unattended(
    session: Session,
    tenant_id: int,
    who: Actor,
    lookup: CallerLookup,
    kind: Literal["voicemail", "missed_call"],
    text: str,
    *,
    cdr_id: str | None,
    attachment_path: str | None,
) -> tuple[ServiceRequest, RequestNote, bool, str]:
    """Note on the contact's open request, else a new request (no questions asked)."""
    if lookup.ambiguous:
        text += f" (caller not identified for sure: {lookup.ambiguity})"
    found = _open_request_of(session, tenant_id, lookup)
    if found is None:
        request = _new_unattended_request(session, tenant_id, who, lookup, kind)
        created, reason = True, "no open request of this caller"
    else:
        (request, reason), created = found, False
    note = add_note(
        session,
        tenant_id,
        who,
        request.number,
        text,
        kind=kind,
        cdr_id=cdr_id,
        attachment_path=attachment_path,
    )
    return request, note, created, reason


def request_from_voicemail(
    session: Session,
    tenant_id: int,
    *,
    caller: str,
    recording_path: str,
    mailbox: str,
    cdr_id: str | None = None,
    call_id: str | None = None,
    duration: float | None = None,
    actor: Actor | int | str = SYSTEM,
) -> CallOutcome:
    """File a voicemail left for the front desk or a group (``mailbox``) with its
    recording attached: a note on the caller's open request, else a new request."""
    who = Actor.of(actor)
    lookup = caller_lookup(session, tenant_id, caller)
    length = f", {int(duration) // 60}:{int(duration) % 60:02d}" if duration is not None else ""
    text = f"Voicemail from {_who_is_calling(lookup)} for {mailbox}{length}"
    request, note, created, reason = _file_unattended(
        session,
        tenant_id,
        who,
        lookup,
        "voicemail",
        text,
        cdr_id=cdr_id,
        attachment_path=recording_path,
    )
    action = _act(
        session,
        tenant_id,
        who,
        "voicemail_filed",
        cdr_id=cdr_id,
        call_id=call_id,
        ref=request_ref(request.number),
        target=mailbox,
    )
    return CallOutcome(request, note, created, reason, action)


def request_from_missed_call(
    session: Session,
    tenant_id: int,
    *,
    caller: str,
    called: str,
    cdr_id: str | None = None,
    call_id: str | None = None,
    actor: Actor | int | str = SYSTEM,
) -> CallOutcome | None:
    """File a missed inbound call like a voicemail, when the tenant's
    ``missed_call_requests`` setting is on. None when it is off, or the caller is a
    co-worker or has no number to call back."""
    if not tickets_setting(get_tenant(session, tenant_id), "missed_call_requests"):
        return None
    who = Actor.of(actor)
    lookup = caller_lookup(session, tenant_id, caller)
    if lookup.is_coworker or lookup.number is None:
        return None
    text = f"Missed call from {_who_is_calling(lookup)} to {called}"
    request, note, created, reason = _file_unattended(
        session,
        tenant_id,
        who,
        lookup,
        "missed_call",
        text,
        cdr_id=cdr_id,
        attachment_path=None,
    )
    action = _act(
        session,
        tenant_id,
        who,
        "missed_call_filed",
        cdr_id=cdr_id,
        call_id=call_id,
        ref=request_ref(request.number),
        target=called,
    )
    return CallOutcome(request, note, created, reason, action)
