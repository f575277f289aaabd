"""Request and response models of the tickets API (/api/v1/tickets): companies, contacts,
service requests and notes, "working on it now", the caller lookup, the helpdesk inbound
API and webhook endpoints with their delivery log.

Inputs are strict like the rest of the API (``Input``: unknown fields refused, text without
control characters, bounded numbers), so a malformed payload is a 422 problem naming the
field. Phone numbers are only shape-checked here; ``tickets.numbers`` decides whether they
are real numbers. This module holds no logic beyond field constraints.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from frontdesk.api.common import INT32
from frontdesk.api.schemas import Email, Input, Text

Id = Annotated[int, Field(ge=1, le=INT32)]
PhoneText = Annotated[
    str, StringConstraints(min_length=1, max_length=40, pattern=r"^[0-9+()./ \-]+$")
]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[^\x00-\x1f\x7f]+$")
]
NoteText = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=10000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$"
    ),
]
ExternalRef = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
]
RequestRef = Annotated[str, StringConstraints(pattern=r"^(?i:SR-?)?[0-9]{1,9}$")]
State = Literal["new", "open", "in_progress", "waiting", "resolved"]
Priority = Literal["low", "normal", "high", "urgent"]
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z_.*?]+$")]
Url = Annotated[
    str, StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f]+$")
]
Secret = Annotated[str, StringConstraints(min_length=16, max_length=255, pattern=r"^[!-~]+$")]


# --- inputs --------------------------------------------------------------------------------


class NumberIn(Input):
    number: PhoneText
    label: Label | None = None


class CompanyIn(Input):
    name: Text
    numbers: Annotated[list[PhoneText], Field(max_length=20)] = []
    external_ref: ExternalRef | None = None


class CompanyPatch(Input):
    name: Text


class ContactIn(Input):
    name: Text
    email: Email | None = None
    company_ids: Annotated[list[Id], Field(max_length=20)] = []
    numbers: Annotated[list[PhoneText], Field(max_length=20)] = []
    external_ref: ExternalRef | None = None


class ContactPatch(Input):
    name: Text | None = None
    email: Email | None = None
    company_ids: Annotated[list[Id], Field(max_length=20)] | None = None


class RequestIn(Input):
    title: Text
    contact_id: Id | None = None
    company_id: Id | None = None
    priority: Priority = "normal"
    state: State = "new"
    assignee_id: Id | None = None
    note: NoteText | None = None


class RequestPatch(Input):
    """Fields left out stay as they are; null clears assignee, contact or company."""

    title: Text | None = None
    state: State | None = None
    priority: Priority | None = None
    assignee_id: Id | None = None
    contact_id: Id | None = None
    company_id: Id | None = None


class NoteIn(Input):
    text: NoteText


class WorkingOnIn(Input):
    request: RequestRef = Field(description="the request, as SR-<number>")


class HelpdeskRequestIn(Input):
    """A request as the helpdesk knows it; ``assignee`` is a username or e-mail."""

    title: Text | None = None
    state: State | None = None
    priority: Priority | None = None
    assignee: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\s\x00-\x1f]+$")
        ]
        | None
    ) = None
    contact_id: Id | None = None
    company_id: Id | None = None
    note: NoteText | None = None


class HelpdeskWorkingOnIn(Input):
    request: ExternalRef = Field(description="SR-<number>, or the helpdesk's own ticket id")


class EndpointIn(Input):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    url: Url
    kind: Literal["generic", "zammad"] = "generic"
    events: Annotated[list[Pattern], Field(max_length=50)] = []
    secret: Secret | None = None
    enabled: bool = True


class EndpointPatch(Input):
    url: Url | None = None
    events: Annotated[list[Pattern], Field(max_length=50)] | None = None
    enabled: bool | None = None


# --- outputs -------------------------------------------------------------------------------


class CompanyOut(BaseModel):
    id: int
    name: str
    external_ref: str | None
    numbers: list[str]
    created_at: str


class ContactOut(BaseModel):
    id: int
    name: str
    email: str | None
    external_ref: str | None
    company_ids: list[int]
    numbers: list[str]
    created_at: str


class NoteOut(BaseModel):
    id: int
    kind: str
    text: str
    actor: str
    cdr_id: str | None
    attachment_path: str | None
    created_at: str


class RequestOut(BaseModel):
    ref: str = Field(description="SR-<number>")
    number: int
    title: str
    state: State
    priority: Priority
    company_id: int | None
    contact_id: int | None
    assignee_id: int | None
    caller_number: str | None
    external_source: str | None
    external_ref: str | None
    created_by: str
    created_at: str
    updated_at: str
    resolved_at: str | None


class RequestDetailOut(RequestOut):
    notes: list[NoteOut]
    working_on_by: list[int]


class WorkingOnOut(BaseModel):
    technician_id: int
    request: str | None
    since: str | None
    set_by: str | None


class LookupOut(BaseModel):
    """The screen pop: see ``tickets.lookup.CallerLookup``."""

    caller: str
    number: str | None
    is_coworker: bool
    coworkers: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    companies: list[dict[str, Any]]
    ambiguous: bool
    ambiguity: str | None
    open_requests: list[dict[str, Any]]


class EndpointOut(BaseModel):
    id: int
    name: str
    kind: str
    url: str
    events: list[str]
    enabled: bool
    created_at: str


class EndpointCreated(EndpointOut):
    secret: str = Field(description="shown once: the key receivers verify signatures with")


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: int
    event_id: str
    event_name: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    response_code: int | None
    error: str | None
    next_attempt_at: str | None
    last_attempt_at: str | None
    delivered_at: str | None
    created_at: str
    history: list[dict[str, Any]]


# --- answer-time actions on a call ---------------------------------------------------------

ExtensionNumber = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[0-9*#+]+$")
]


class CallRequestIn(Input):
    """Open a request from the call; the caller's contact/company are taken from the caller
    lookup unless given (an ambiguous caller needs one of them)."""

    title: Text | None = None
    contact_id: Id | None = None
    company_id: Id | None = None
    priority: Priority = "normal"
    assignee_id: Id | None = None
    note: NoteText | None = None


class CallNoteIn(Input):
    request: RequestRef = Field(description="the request the call is about, as SR-<number>")
    text: NoteText | None = None


class CallTransferIn(Input):
    extension: ExtensionNumber | None = Field(
        default=None, description="where to; default: the service manager's extension"
    )
    request: RequestRef | None = Field(default=None, description="note the transfer on it")


class CallVoicemailIn(Input):
    mailbox: ExtensionNumber | None = Field(
        default=None, description="which mailbox; default: the service manager's"
    )
    request: RequestRef | None = Field(default=None, description="note it on this request")
