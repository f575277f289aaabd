"""/api/v1/tickets: service requests, their notes, "working on it now", the caller lookup
(screen pop data), the inbound API for an external helpdesk, and (from the included
routers) companies, contacts and webhook endpoints.

``router`` is the one thing the app includes. It needs what every /api/v1 router needs:
``app.state.db`` and ``app.state.bus`` (read by ``api.common.get_caller``), and the
problem+json handlers (``api.problems.install``); tickets errors are turned into those
problems by ``TicketsRoute``. Callers need the permissions in
``tickets_common.TICKETS_PERMISSIONS`` (``service_request.*``, ``contact.*``,
``webhook.*``) from their roles. Events go on ``app.state.bus`` after commit (routing keys
``request.*``, ``call.*``); subscribing the webhook dispatcher's ``wake`` to ``request.``
makes deliveries leave at once instead of at its next poll.

The helpdesk routes act as ``helpdesk:<username of the token's owner>``: give the helpdesk
its own user and API token. This module holds no rules: ``frontdesk.tickets`` does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select

from frontdesk.api import tickets_calls, tickets_directory, tickets_webhooks
from frontdesk.api.common import INT32, Caller, CallerDep
from frontdesk.api.tickets_common import (
    SERVICE_REQUEST_CREATE,
    SERVICE_REQUEST_READ,
    SERVICE_REQUEST_UPDATE,
    TicketsRoute,
    moment,
    note_out,
    reading,
    request_out,
    work,
)
from frontdesk.api.tickets_schemas import (
    ExternalRef,
    HelpdeskRequestIn,
    HelpdeskWorkingOnIn,
    LookupOut,
    NoteIn,
    NoteOut,
    RequestDetailOut,
    RequestIn,
    RequestOut,
    RequestPatch,
    RequestRef,
    WorkingOnIn,
    WorkingOnOut,
)
from frontdesk.tickets import helpdesk, service
from frontdesk.tickets.actor import SYSTEM, Actor
from frontdesk.tickets.events import request_ref
from frontdesk.tickets.lookup import caller_lookup
from frontdesk.tickets.model import WorkingOn

router = APIRouter(prefix="/api/v1/tickets", route_class=TicketsRoute)
router.include_router(tickets_directory.router)
router.include_router(tickets_webhooks.router)
router.include_router(tickets_calls.router)
requests = APIRouter(route_class=TicketsRoute, tags=["tickets: service requests"])
RefPath = Annotated[RequestRef, Path(description="SR-<number>")]
UserPath = Annotated[int, Path(ge=1, le=INT32)]
Technician = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\s\x00-\x1f/]+$")]
HelpdeskRef = Annotated[ExternalRef, Path()]


def actor_of(caller: Caller) -> Actor:
    """The tickets actor for the signed-in caller."""
    return Actor.user(caller.actor.user_id) if caller.actor.user_id is not None else SYSTEM


def _detail(s: Any, tenant_id: int, ref: str | int) -> dict[str, Any]:
    row = service.get_request(s, tenant_id, ref)
    notes = service.list_notes(s, tenant_id, row.number)
    working = s.scalars(
        select(WorkingOn.user_id).where(WorkingOn.request_id == row.id).order_by(WorkingOn.user_id)
    )
    return {
        **request_out(row),
        "notes": [note_out(n) for n in notes],
        "working_on_by": list(working),
    }


@requests.get("/lookup", response_model=LookupOut, summary="Who is calling (screen pop data)")
def lookup(
    caller: CallerDep,
    number: Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")],
) -> Any:
    """Caller ID -> co-worker, contacts, companies, open requests; ambiguity is reported."""
    with reading(caller, SERVICE_REQUEST_READ) as s:
        return caller_lookup(s, caller.tenant_id, number).as_dict()


@requests.get("/requests", response_model=list[RequestOut], summary="Service requests")
def list_requests(
    caller: CallerDep,
    state: Annotated[list[str] | None, Query(max_length=5)] = None,
    contact_id: Annotated[int | None, Query(ge=1, le=INT32)] = None,
    company_id: Annotated[int | None, Query(ge=1, le=INT32)] = None,
    assignee_id: Annotated[int | None, Query(ge=1, le=INT32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    with reading(caller, SERVICE_REQUEST_READ) as s:
        rows = service.list_requests(
            s,
            caller.tenant_id,
            states=tuple(state) if state else None,
            contact_id=contact_id,
            company_id=company_id,
            assignee_id=assignee_id,
            limit=limit,
        )
        return [request_out(r) for r in rows]


@requests.post(
    "/requests", response_model=RequestDetailOut, status_code=201, summary="Open a service request"
)
def create_request(body: RequestIn, caller: CallerDep) -> Any:
    with work(caller, SERVICE_REQUEST_CREATE) as s:
        row = service.create_request(
            s,
            caller.tenant_id,
            actor_of(caller),
            title=body.title,
            contact_id=body.contact_id,
            company_id=body.company_id,
            priority=body.priority,
            state=body.state,
            assignee_id=body.assignee_id,
            note=body.note,
        )
        return _detail(s, caller.tenant_id, row.number)


@requests.get(
    "/requests/{ref}", response_model=RequestDetailOut, summary="One service request with its notes"
)
def get_request(ref: RefPath, caller: CallerDep) -> Any:
    with reading(caller, SERVICE_REQUEST_READ) as s:
        return _detail(s, caller.tenant_id, ref)


@requests.patch(
    "/requests/{ref}",
    response_model=RequestDetailOut,
    summary="Change a service request (state, priority, assignee...)",
)
def update_request(ref: RefPath, body: RequestPatch, caller: CallerDep) -> Any:
    changes = body.fields()
    for required in ("title", "state", "priority"):
        if changes.get(required, "") is None:
            changes.pop(required)
    with work(caller, SERVICE_REQUEST_UPDATE) as s:
        row = service.update_request(s, caller.tenant_id, actor_of(caller), ref, **changes)
        return _detail(s, caller.tenant_id, row.number)


@requests.post(
    "/requests/{ref}/notes",
    response_model=NoteOut,
    status_code=201,
    summary="Add a note to a service request",
)
def add_note(ref: RefPath, body: NoteIn, caller: CallerDep) -> Any:
    with work(caller, SERVICE_REQUEST_UPDATE) as s:
        return note_out(service.add_note(s, caller.tenant_id, actor_of(caller), ref, body.text))


def _working_on_out(s: Any, tenant_id: int, user_id: int) -> dict[str, Any]:
    mark = s.scalar(
        select(WorkingOn).where(WorkingOn.user_id == user_id, WorkingOn.tenant_id == tenant_id)
    )
    request = service.working_on(s, tenant_id, user_id)
    return {
        "technician_id": user_id,
        "request": request_ref(request.number) if request is not None else None,
        "since": moment(mark.since) if mark is not None else None,
        "set_by": mark.set_by if mark is not None else None,
    }


def _own_or_update(caller: Caller, user_id: int) -> str:
    """One's own mark needs only read access; someone else's needs update."""
    return SERVICE_REQUEST_READ if caller.actor.user_id == user_id else SERVICE_REQUEST_UPDATE


@requests.get(
    "/working-on/{user_id}",
    response_model=WorkingOnOut,
    summary="What a technician is working on right now",
)
def get_working_on(user_id: UserPath, caller: CallerDep) -> Any:
    with reading(caller, SERVICE_REQUEST_READ) as s:
        return _working_on_out(s, caller.tenant_id, user_id)


@requests.put(
    "/working-on/{user_id}",
    response_model=WorkingOnOut,
    summary="Set what a technician is working on now (replaces the earlier one)",
)
def set_working_on(user_id: UserPath, body: WorkingOnIn, caller: CallerDep) -> Any:
    with work(caller, _own_or_update(caller, user_id)) as s:
        service.set_working_on(s, caller.tenant_id, actor_of(caller), user_id, body.request)
        return _working_on_out(s, caller.tenant_id, user_id)


@requests.delete(
    "/working-on/{user_id}", status_code=204, summary="Clear what a technician is working on"
)
def clear_working_on(user_id: UserPath, caller: CallerDep) -> Response:
    with work(caller, _own_or_update(caller, user_id)) as s:
        service.clear_working_on(s, caller.tenant_id, actor_of(caller), user_id)
    return Response(status_code=204)


# --- the inbound API for an external helpdesk -----------------------------------------------


@requests.put(
    "/helpdesk/requests/{external_ref}",
    response_model=RequestDetailOut,
    summary="Helpdesk: create or update the request it knows as external_ref",
)
def helpdesk_upsert(
    external_ref: HelpdeskRef, body: HelpdeskRequestIn, caller: CallerDep, response: Response
) -> Any:
    fields = body.fields()
    kwargs = {k: fields[k] for k in ("assignee", "contact_id", "company_id") if k in fields}
    with work(caller, SERVICE_REQUEST_UPDATE) as s:
        if (
            service.find_external_request(s, caller.tenant_id, caller.actor.name, external_ref)
            is None
        ):
            caller.require(s, SERVICE_REQUEST_CREATE)
        row, created = helpdesk.upsert_request(
            s,
            caller.tenant_id,
            caller.actor.name,
            external_ref,
            title=body.title,
            state=body.state,
            priority=body.priority,
            note=body.note,
            **kwargs,
        )
        response.status_code = 201 if created else 200
        return _detail(s, caller.tenant_id, row.number)


@requests.put(
    "/helpdesk/working-on/{technician}",
    response_model=WorkingOnOut,
    summary="Helpdesk: set what a technician (username or e-mail) works on now",
)
def helpdesk_set_working_on(
    technician: Technician, body: HelpdeskWorkingOnIn, caller: CallerDep
) -> Any:
    with work(caller, SERVICE_REQUEST_UPDATE) as s:
        mark = helpdesk.set_working_on(
            s, caller.tenant_id, caller.actor.name, technician, body.request
        )
        return _working_on_out(s, caller.tenant_id, mark.user_id)


@requests.delete(
    "/helpdesk/working-on/{technician}",
    status_code=204,
    summary="Helpdesk: clear what a technician works on",
)
def helpdesk_clear_working_on(technician: Technician, caller: CallerDep) -> Response:
    with work(caller, SERVICE_REQUEST_UPDATE) as s:
        helpdesk.clear_working_on(s, caller.tenant_id, caller.actor.name, technician)
    return Response(status_code=204)


router.include_router(requests)
