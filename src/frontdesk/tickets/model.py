"""Tables of the tickets layer: companies, contacts and their phone numbers, co-worker
numbers, service requests with notes, the "working on it now" mark, and the outbound
webhook endpoints with their delivery log.

Phone numbers are stored in E.164 (``+12125550100``) and indexed by ``(tenant_id, e164)``,
so the caller lookup on every inbound call is a handful of index probes. The same number
may belong to several contacts or companies (a shared office line); the lookup reports
that as ambiguous instead of guessing.

This module only describes tables (on ``frontdesk.store.models.Base``). It must never open
connections, run queries or hold business rules beyond column defaults: rules live in
``service.py``, ``contacts.py`` and ``lookup.py``. Changing a table needs a new Alembic
revision (the drift test in tests/store fails otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.store.models import Base, UtcDateTime, json_type, utcnow

#: States of a service request, in the order a request usually moves through them.
REQUEST_STATES = ("new", "open", "in_progress", "waiting", "resolved")
#: States counted as "open" by the caller lookup and the voicemail rule.
OPEN_STATES = ("new", "open", "in_progress", "waiting")
REQUEST_PRIORITIES = ("low", "normal", "high", "urgent")
#: ``call`` and ``voicemail`` notes come from the phone system, ``missed_call`` from a call
#: nobody answered, ``change`` records a change of state, assignee or "working on".
NOTE_KINDS = ("note", "call", "voicemail", "missed_call", "change")
WEBHOOK_KINDS = ("generic", "zammad")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
#: Longest E.164 number is 15 digits plus "+".
E164_LENGTH = 16
ACTOR_LENGTH = 128


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _tenant_fk() -> Any:
    return ForeignKey("tenants.id", ondelete="CASCADE")


class Company(Base):
    """A customer organisation the tenant serves (not to be confused with the tenant)."""

    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    name: Mapped[str] = mapped_column(String(255))
    #: The company's id in an external helpdesk, if it has one.
    external_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Contact(Base):
    """A person who calls in; belongs to zero, one or several companies."""

    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_tenant_id_name", "tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    external_ref: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ContactCompany(Base):
    """Membership of a contact in a company (a contact may work for several)."""

    __tablename__ = "contact_companies"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())


class ContactNumber(Base):
    """A phone number (E.164) of a contact."""

    __tablename__ = "contact_numbers"
    __table_args__ = (
        UniqueConstraint("contact_id", "e164"),
        Index("ix_contact_numbers_tenant_id_e164", "tenant_id", "e164"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(E164_LENGTH))
    label: Mapped[str | None] = mapped_column(String(32))


class CompanyNumber(Base):
    """A phone number (E.164) of a company, e.g. its switchboard."""

    __tablename__ = "company_numbers"
    __table_args__ = (
        UniqueConstraint("company_id", "e164"),
        Index("ix_company_numbers_tenant_id_e164", "tenant_id", "e164"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(E164_LENGTH))
    label: Mapped[str | None] = mapped_column(String(32))


class CoworkerNumber(Base):
    """An outside number (mobile, home office) of one of the tenant's own users, so a
    co-worker calling from it is recognised as a co-worker (and rings through to
    technicians)."""

    __tablename__ = "coworker_numbers"
    __table_args__ = (
        UniqueConstraint("user_id", "e164"),
        Index("ix_coworker_numbers_tenant_id_e164", "tenant_id", "e164"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(String(E164_LENGTH))
    label: Mapped[str | None] = mapped_column(String(32))


class ServiceRequestCounter(Base):
    """The last service request number handed out per tenant (row-locked when bumped)."""

    __tablename__ = "service_request_counters"

    tenant_id: Mapped[int] = mapped_column(_tenant_fk(), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)


class ServiceRequest(Base):
    """A service request; people call it by ``SR-<number>``, unique per tenant."""

    __tablename__ = "service_requests"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "external_source", "external_ref"),
        CheckConstraint(_one_of("state", REQUEST_STATES), name="state_known"),
        CheckConstraint(_one_of("priority", REQUEST_PRIORITIES), name="priority_known"),
        Index("ix_service_requests_tenant_id_contact_id_state", "tenant_id", "contact_id", "state"),
        Index("ix_service_requests_tenant_id_company_id_state", "tenant_id", "company_id", "state"),
        Index("ix_service_requests_tenant_id_state", "tenant_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    #: E.164 of the caller a request was opened from when no contact was known.
    caller_number: Mapped[str | None] = mapped_column(String(E164_LENGTH))
    #: Which external helpdesk mirrors this request (its name) and its id there.
    external_source: Mapped[str | None] = mapped_column(String(64))
    external_ref: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RequestNote(Base):
    """One entry in a request's history: a note, a call, a voicemail or a change.

    ``actor`` says who wrote it (``user:12``, ``helpdesk:zammad``, ``system``). ``cdr_id`` is
    the call's CDR id without a foreign key: the call engine writes CDRs behind, so the CDR
    row may not exist yet when a note is added during the call.
    """

    __tablename__ = "request_notes"
    __table_args__ = (CheckConstraint(_one_of("kind", NOTE_KINDS), name="kind_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_requests.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cdr_id: Mapped[str | None] = mapped_column(String(36), index=True)
    attachment_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WorkingOn(Base):
    """The request a technician is working on right now; at most one per technician."""

    __tablename__ = "working_on"
    __table_args__ = (UniqueConstraint("user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_requests.id", ondelete="CASCADE"), index=True
    )
    since: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    set_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class WebhookEndpoint(Base):
    """Where call and request events are sent. ``events`` lists routing-key patterns
    (``request.*``, ``call.answered``); an empty list means every event."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        CheckConstraint(_one_of("kind", WEBHOOK_KINDS), name="kind_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="generic")
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(255))
    events: Mapped[list[str]] = mapped_column(json_type(), default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: the exact body sent, and how delivering it went.

    Written in the same transaction as the change that caused the event, before any
    attempt, so nothing is lost when the process dies. ``history`` holds one entry per
    attempt (time, response code, error).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status_known"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    event_name: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    history: Mapped[list[dict[str, Any]]] = mapped_column(json_type(), default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
