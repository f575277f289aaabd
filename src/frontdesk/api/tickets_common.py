"""What the tickets API routers share: the permission names they check, the route class
that turns tickets errors into the API's problem+json, the unit of work that publishes
events after commit, and how rows are shown.

Service requests, contacts and notes are operational data (like CDRs), not configuration:
they are permission-checked per request but do not go through change requests. The actor
is always the signed-in caller (``user:<id>``), or ``helpdesk:<username>`` on the helpdesk
routes. This module must never decide permissions itself (``Caller.require`` does) nor
read the actor from anywhere but the ``Caller``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from frontdesk.api.common import Caller
from frontdesk.org.audit import iso
from frontdesk.org.errors import OrgError
from frontdesk.org.events import OrgEvent
from frontdesk.tickets import directory
from frontdesk.tickets.errors import TicketsError
from frontdesk.tickets.events import TicketEvent, request_ref
from frontdesk.tickets.model import (
    Company,
    Contact,
    RequestNote,
    ServiceRequest,
    WebhookDelivery,
    WebhookEndpoint,
)
from frontdesk.tickets.outbox import unit_of_work

#: Permissions the tickets API checks (resource.action, like org's matrix).
SERVICE_REQUEST_READ = "service_request.read"
SERVICE_REQUEST_CREATE = "service_request.create"
SERVICE_REQUEST_UPDATE = "service_request.update"
CONTACT_READ = "contact.read"
CONTACT_CREATE = "contact.create"
CONTACT_UPDATE = "contact.update"
CONTACT_DELETE = "contact.delete"
WEBHOOK_READ = "webhook.read"
WEBHOOK_CREATE = "webhook.create"
WEBHOOK_UPDATE = "webhook.update"
WEBHOOK_DELETE = "webhook.delete"
TICKETS_PERMISSIONS = (
    SERVICE_REQUEST_READ,
    SERVICE_REQUEST_CREATE,
    SERVICE_REQUEST_UPDATE,
    CONTACT_READ,
    CONTACT_CREATE,
    CONTACT_UPDATE,
    CONTACT_DELETE,
    WEBHOOK_READ,
    WEBHOOK_CREATE,
    WEBHOOK_UPDATE,
    WEBHOOK_DELETE,
)


def as_problem(error: TicketsError) -> OrgError:
    """The API's error for a tickets error (same status, title, message, fix, field)."""
    problem = OrgError(error.message, fix=error.fix, field=error.field)
    problem.status = error.status
    problem.title = error.title
    return problem


class TicketsRoute(APIRoute):
    """Routes whose tickets errors become problem+json like every other API error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except TicketsError as error:
                raise as_problem(error) from error

        return translated


@contextmanager
def work(caller: Caller, permission: str) -> Iterator[Session]:
    """A transaction for a change: the permission is checked first; events recorded by the
    tickets layer become webhook deliveries before commit and go on the bus after it."""

    def to_bus(events: list[TicketEvent]) -> None:
        caller.bus.publish(cast(list[OrgEvent], events))

    with unit_of_work(caller.db, bus=to_bus) as unit:
        caller.require(unit.session, permission)
        yield unit.session


@contextmanager
def reading(caller: Caller, permission: str) -> Iterator[Session]:
    with caller.session() as session:
        caller.require(session, permission)
        yield session


def moment(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def company_out(session: Session, row: Company) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "external_ref": row.external_ref,
        "numbers": directory.company_numbers(session, row.id),
        "created_at": iso(row.created_at),
    }


def contact_out(session: Session, row: Contact) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "email": row.email,
        "external_ref": row.external_ref,
        "company_ids": directory.contact_company_ids(session, row.id),
        "numbers": directory.contact_numbers(session, row.id),
        "created_at": iso(row.created_at),
    }


def request_out(row: ServiceRequest) -> dict[str, Any]:
    return {
        "ref": request_ref(row.number),
        "number": row.number,
        "title": row.title,
        "state": row.state,
        "priority": row.priority,
        "company_id": row.company_id,
        "contact_id": row.contact_id,
        "assignee_id": row.assignee_id,
        "caller_number": row.caller_number,
        "external_source": row.external_source,
        "external_ref": row.external_ref,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "resolved_at": moment(row.resolved_at),
    }


def note_out(row: RequestNote) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "text": row.text,
        "actor": row.actor,
        "cdr_id": row.cdr_id,
        "attachment_path": row.attachment_path,
        "created_at": iso(row.created_at),
    }


def endpoint_out(row: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "url": row.url,
        "events": list(row.events or []),
        "enabled": row.enabled,
        "created_at": iso(row.created_at),
    }


def delivery_out(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_name": row.event_name,
        "status": row.status,
        "attempts": row.attempts,
        "response_code": row.response_code,
        "error": row.error,
        "next_attempt_at": moment(row.next_attempt_at),
        "last_attempt_at": moment(row.last_attempt_at),
        "delivered_at": moment(row.delivered_at),
        "created_at": iso(row.created_at),
        "history": list(row.history or []),
    }
