"""Call and service-request events: what happened, for the live WebSocket bus and the
outbound webhooks.

Every event is a frozen dataclass, named in the past tense, carrying its own
``routing_key`` (``request.created``, ``call.answered``...) and the ``required_permission``
a WebSocket client or webhook consumer must hold to receive it, so consumers filter
without a second table. ``envelope()`` is the JSON document sent to generic webhooks.

Service functions *record* events on the session they work in (``record``); whoever owns
the transaction *drains* them before commit (``outbox.publish``) so webhook deliveries are
written in the same transaction as the change. This module must never send anything or
touch the database itself.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.orm import Session

from frontdesk.store.models import utcnow
from frontdesk.tickets.model import ServiceRequest

if TYPE_CHECKING:
    from frontdesk.tickets.lookup import CallerLookup

#: What a WebSocket client must hold to receive request events (the API's read permission)
#: and call events (whoever may read CDRs); a screen pop goes only to its ``user_id``.
PERMISSION_REQUESTS = "service_request.read"
PERMISSION_CALLS = "cdr.read"
#: who answered a call: a person's phone, or Frontdesk's own media (voicemail, menus)
ANSWERER_USER = "user"
ANSWERER_FRONTDESK = "frontdesk"
#: the answering "user" Zammad's CTI expects for a call taken by voicemail
VOICEMAIL_USER = "voicemail"
_OUTBOX_KEY = "frontdesk.tickets.events"

#: Zammad's hangup causes (its CTI API), chosen from a CDR disposition.
HANGUP_CAUSES = {
    "answered": "normalClearing",
    "busy": "busy",
    "cancelled": "cancel",
    "no-answer": "noAnswer",
    "rejected": "noAnswer",
    "failed": "congestion",
    "interrupted": "congestion",
    "not-found": "notFound",
    "forwarded": "forwarded",
}


def request_ref(number: int) -> str:
    """The human number of a request: ``SR-1042``."""
    return f"SR-{number}"


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """A service request as it was when the event happened."""

    id: int
    ref: str
    title: str
    state: str
    priority: str
    company_id: int | None
    contact_id: int | None
    assignee_id: int | None
    caller_number: str | None
    external_source: str | None
    external_ref: str | None

    @classmethod
    def of(cls, request: ServiceRequest) -> RequestSnapshot:
        return cls(
            id=request.id,
            ref=request_ref(request.number),
            title=request.title,
            state=request.state,
            priority=request.priority,
            company_id=request.company_id,
            contact_id=request.contact_id,
            assignee_id=request.assignee_id,
            caller_number=request.caller_number,
            external_source=request.external_source,
            external_ref=request.external_ref,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketEvent:
    """Base of all events: which tenant, a unique id, when."""

    routing_key: ClassVar[str] = "event"
    required_permission: ClassVar[str] = PERMISSION_REQUESTS

    tenant_id: int
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = field(default_factory=utcnow)

    def data(self) -> dict[str, Any]:
        """The event's own fields (without the envelope ones), JSON-ready."""
        fields = asdict(self)
        for key in ("tenant_id", "event_id", "occurred_at"):
            fields.pop(key)
        data: dict[str, Any] = _jsonable(fields)
        return data

    def envelope(self) -> dict[str, Any]:
        """The document generic webhooks receive."""
        return {
            "id": self.event_id,
            "event": self.routing_key,
            "occurred_at": self.occurred_at.isoformat(),
            "tenant_id": self.tenant_id,
            "data": self.data(),
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --- service requests ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestCreated(TicketEvent):
    routing_key: ClassVar[str] = "request.created"
    request: RequestSnapshot
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestUpdated(TicketEvent):
    """Fields of a request changed; ``changes`` maps each field to ``[old, new]``."""

    routing_key: ClassVar[str] = "request.updated"
    request: RequestSnapshot
    actor: str
    changes: dict[str, list[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestNoteAdded(TicketEvent):
    routing_key: ClassVar[str] = "request.note_added"
    request_ref: str
    note_id: int
    kind: str
    text: str
    actor: str
    cdr_id: str | None
    attachment_path: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkingOnSet(TicketEvent):
    """A technician marked a request as "working on it now" (replacing any earlier one)."""

    routing_key: ClassVar[str] = "request.working_on_set"
    technician_id: int
    request_ref: str
    previous_ref: str | None
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkingOnCleared(TicketEvent):
    routing_key: ClassVar[str] = "request.working_on_cleared"
    technician_id: int
    request_ref: str
    actor: str


# --- calls ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(TicketEvent):
    """A call began ringing; ``users`` are the names of the people it rings (inbound) or
    of the caller (outbound)."""

    routing_key: ClassVar[str] = "call.started"
    required_permission: ClassVar[str] = PERMISSION_CALLS
    call_id: str
    caller: str
    callee: str
    direction: str = "in"
    users: tuple[str, ...] = ()
    queue: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(TicketEvent):
    """``answered_by`` is the answering user's name; ``answering_number`` their extension,
    login or e-mail (what Zammad matches users by). ``answerer`` says who answered: ``user``
    (a person's phone) or ``frontdesk`` (Frontdesk's own media: voicemail, a menu or a
    prompt); then ``answered_by`` is ``voicemail``, the name Zammad's caller log keeps such
    calls open (not done) by, and ``answering_number`` is None."""

    routing_key: ClassVar[str] = "call.answered"
    required_permission: ClassVar[str] = PERMISSION_CALLS
    call_id: str
    caller: str
    callee: str
    direction: str = "in"
    answered_by: str | None = None
    answering_number: str | None = None
    answerer: str = ANSWERER_USER


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(TicketEvent):
    """The caller of an answered call now talks to someone else: a transfer from the
    screen pop or the API, a flow's menu handing the caller to a ring step (``from`` is
    Frontdesk), or a person sending the caller to voicemail (``to`` is Frontdesk).
    ``from_*`` / ``to_*`` name the previous and the new answerer as ``CallAnswered`` does;
    ``actor`` is whoever asked for it (None: the call flow)."""

    routing_key: ClassVar[str] = "call.transferred"
    required_permission: ClassVar[str] = PERMISSION_CALLS
    call_id: str
    caller: str
    callee: str
    direction: str = "in"
    from_answered_by: str | None = None
    from_number: str | None = None
    from_answerer: str = ANSWERER_USER
    to_answered_by: str | None = None
    to_number: str | None = None
    to_answerer: str = ANSWERER_USER
    actor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(TicketEvent):
    """``disposition`` is the CDR's (answered, busy, no-answer, cancelled...); ``duration``
    seconds from start to end and ``billsec`` the talk time, as on the CDR."""

    routing_key: ClassVar[str] = "call.ended"
    required_permission: ClassVar[str] = PERMISSION_CALLS
    call_id: str
    caller: str
    callee: str
    disposition: str
    direction: str = "in"
    answered_by: str | None = None
    answering_number: str | None = None
    cdr_id: str | None = None
    duration: float | None = None
    billsec: float | None = None

    @property
    def cause(self) -> str:
        """The hangup cause in Zammad's words."""
        return HANGUP_CAUSES.get(self.disposition, "normalClearing")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerIdentified(TicketEvent):
    """The screen pop: who is calling, pushed to the user whose phone rings or who
    answered (``user_id``). ``lookup`` is ``CallerLookup.as_dict()``."""

    routing_key: ClassVar[str] = "call.caller_identified"
    required_permission: ClassVar[str] = PERMISSION_CALLS
    call_id: str
    user_id: int | None
    lookup: dict[str, Any]

    @classmethod
    def of(
        cls, lookup: CallerLookup, *, tenant_id: int, call_id: str, user_id: int | None
    ) -> CallerIdentified:
        return cls(tenant_id=tenant_id, call_id=call_id, user_id=user_id, lookup=lookup.as_dict())


@dataclass(frozen=True, slots=True, kw_only=True)
class CallActionTaken(TicketEvent):
    """Someone acted on a live call from the screen pop (created or updated a request,
    transferred it, sent it to voicemail)."""

    routing_key: ClassVar[str] = "call.action_taken"
    required_permission: ClassVar[str] = PERMISSION_CALLS
    call_id: str | None
    cdr_id: str | None
    action: str
    actor: str
    request_ref: str | None = None
    target: str | None = None


# --- the outbox on the session -------------------------------------------------------------


def record(session: Session, event: TicketEvent) -> None:
    """Remember ``event`` until the transaction's owner publishes it."""
    session.info.setdefault(_OUTBOX_KEY, []).append(event)


def drain(session: Session) -> list[TicketEvent]:
    """The events recorded on ``session`` since the last drain, oldest first."""
    events: list[TicketEvent] = session.info.pop(_OUTBOX_KEY, [])
    return events


def pending(session: Session) -> list[TicketEvent]:
    """The recorded events without removing them (for tests and checks)."""
    return list(session.info.get(_OUTBOX_KEY, []))
