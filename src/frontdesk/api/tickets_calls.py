"""/api/v1/tickets/calls: answer-time actions on a live call, for whoever answers.

- ``GET /calls`` — the tenant's calls in progress (and the last ended ones) as the running
  server knows them: reference, caller, callee, who answered, actions taken.
- ``POST /calls/{call_ref}/request`` — open a new service request from the call.
- ``POST /calls/{call_ref}/note`` — add the call to an existing request (an unknown request
  number is a 404 problem naming it).
- ``POST /calls/{call_ref}/transfer`` — transfer the live call (default: to the service
  manager) through the call engine's call control, then record it.
- ``POST /calls/{call_ref}/voicemail`` — send the live call to a mailbox (default: the
  service manager's), then record it.

``call_ref`` is the call's CDR id: the screen pop carries it as ``data.call_id``. Every
action is recorded who/what/when on the CDR (``extra.ticket_actions``) and, when it names
one, on the request (a call note), and published as ``call.action_taken``.

Endpoints are async: they run on the server's event loop, where the call engine and the
tickets bridge live; database work goes to worker threads. This module must never pretend
an action on the call happened: without the engine's call control it answers 503.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Path, Request
from sqlalchemy import select

from frontdesk.api.common import Caller, CallerDep
from frontdesk.api.tickets_common import (
    SERVICE_REQUEST_CREATE,
    SERVICE_REQUEST_UPDATE,
    TicketsRoute,
    note_out,
    request_out,
)
from frontdesk.api.tickets_schemas import (
    CallNoteIn,
    CallRequestIn,
    CallTransferIn,
    CallVoicemailIn,
)
from frontdesk.org.events import OrgEvent
from frontdesk.org.model import RoleAssignment
from frontdesk.pbx.callcontrol_live import CallControlError
from frontdesk.store.models import Cdr, Extension
from frontdesk.tickets import service
from frontdesk.tickets.actor import SYSTEM, Actor
from frontdesk.tickets.calls import CallAction, CallOutcome
from frontdesk.tickets.calltime import CallTickets
from frontdesk.tickets.errors import (
    CallActionFailed,
    CallEnded,
    CallUnavailable,
    NotFound,
    UnknownCall,
)
from frontdesk.tickets.events import TicketEvent

router = APIRouter(route_class=TicketsRoute, tags=["tickets: live calls"])
CallRef = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
CALL_READ = "cdr.read"


@dataclass(frozen=True, slots=True)
class TheCall:
    """The call an action is about: its CDR id, caller, who answered, whether it is live."""

    cdr_id: str
    tenant_id: int
    caller: str
    answered_by: str | None
    live: bool


def _actor(caller: Caller) -> Actor:
    return Actor.user(caller.actor.user_id) if caller.actor.user_id is not None else SYSTEM


@dataclass(frozen=True, slots=True)
class Desk:
    """Where answer-time actions go: the running server's tickets bridge (live calls), or,
    for an API without a call engine (tools, tests), the stored calls only."""

    bridge: Any  # pbx.tickets_bridge.TicketsBridge, or None
    tickets: CallTickets

    async def record(self, cdr_id: str, action: CallAction) -> None:
        """Keep ``action`` on the call's CDR."""
        if self.bridge is not None:
            await self.bridge.record_action(cdr_id, action)
        else:
            await self.tickets.action_on_cdr(cdr_id, action)


def _desk(request: Request, caller: Caller) -> Desk:
    bridge = getattr(getattr(request.app.state, "server", None), "tickets", None)
    if bridge is not None:
        return Desk(bridge, bridge.tickets)

    def to_bus(published: list[TicketEvent]) -> None:
        caller.bus.publish(cast(list[OrgEvent], published))

    return Desk(None, CallTickets(caller.db, bus=to_bus))


async def _require(caller: Caller, permission: str) -> None:
    def check() -> None:
        with caller.session() as session:
            caller.require(session, permission)

    await asyncio.to_thread(check)


def _stored_call(caller: Caller, call_ref: str) -> TheCall | None:
    with caller.session() as session:
        row = session.get(Cdr, call_ref)
        if row is None or row.tenant_id != caller.tenant_id:
            return None
        return TheCall(row.id, row.tenant_id, row.caller, row.callee_answered_by, False)


async def _the_call(request: Request, caller: Caller, call_ref: str) -> tuple[Desk, TheCall]:
    desk = _desk(request, caller)
    live = desk.bridge.call(call_ref) if desk.bridge is not None else None
    if live is not None and live.tenant_id == caller.tenant_id:
        return desk, TheCall(
            live.cdr_id, live.tenant_id, live.caller, live.answered_by, not live.ended
        )
    stored = await asyncio.to_thread(_stored_call, caller, call_ref)
    if stored is None:
        raise UnknownCall(
            f"call {call_ref!r} is not a call of tenant {caller.tenant_slug}", field="call_ref"
        )
    return desk, stored


def _outcome(the_call: TheCall, outcome: CallOutcome) -> dict[str, Any]:
    return {
        "call_ref": the_call.cdr_id,
        "created": outcome.created,
        "request": request_out(outcome.request),
        "note": note_out(outcome.note),
        "action": outcome.action.as_cdr_entry(),
    }


async def _recorded(desk: Desk, the_call: TheCall, outcome: CallOutcome) -> dict[str, Any]:
    """Keep the action on the call's CDR; the response naming call, action and request."""
    await desk.record(the_call.cdr_id, outcome.action)
    return _outcome(the_call, outcome)


@router.get("/calls", summary="Calls in progress (and the last ended ones)")
async def list_calls(request: Request, caller: CallerDep) -> Any:
    await _require(caller, CALL_READ)
    bridge = _desk(request, caller).bridge
    if bridge is None:
        return []  # no call engine behind this API: no live calls
    known = [*bridge.calls.values(), *reversed(bridge.recent.values())]
    return [c.as_dict() for c in known if c.tenant_id == caller.tenant_id][:200]


@router.post(
    "/calls/{call_ref}/request", status_code=201, summary="Open a service request from the call"
)
async def request_from_call(
    call_ref: CallRef, body: CallRequestIn, request: Request, caller: CallerDep
) -> Any:
    await _require(caller, SERVICE_REQUEST_CREATE)
    desk, the_call = await _the_call(request, caller, call_ref)
    outcome = await desk.tickets.request_from_call(
        caller.tenant_id,
        _actor(caller),
        caller=the_call.caller,
        cdr_id=the_call.cdr_id,
        call_id=the_call.cdr_id,
        title=body.title,
        contact_id=body.contact_id,
        company_id=body.company_id,
        priority=body.priority,
        assignee_id=body.assignee_id,
        note=body.note,
    )
    return await _recorded(desk, the_call, outcome)


@router.post(
    "/calls/{call_ref}/note", status_code=201, summary="Add the call to an existing request"
)
async def note_from_call(
    call_ref: CallRef, body: CallNoteIn, request: Request, caller: CallerDep
) -> Any:
    await _require(caller, SERVICE_REQUEST_UPDATE)
    desk, the_call = await _the_call(request, caller, call_ref)
    outcome = await desk.tickets.note_from_call(
        caller.tenant_id,
        _actor(caller),
        body.request,
        caller=the_call.caller,
        cdr_id=the_call.cdr_id,
        call_id=the_call.cdr_id,
        text=body.text,
    )
    return await _recorded(desk, the_call, outcome)


def _service_manager_extension(caller: Caller) -> str | None:
    """The extension of the tenant's service manager (first holder of the role by user id,
    their lowest extension number)."""
    with caller.session() as session:
        row = session.execute(
            select(Extension.number)
            .join(RoleAssignment, RoleAssignment.user_id == Extension.user_id)
            .where(
                RoleAssignment.tenant_id == caller.tenant_id,
                RoleAssignment.role == "service_manager",
                Extension.tenant_id == caller.tenant_id,
            )
            .order_by(RoleAssignment.user_id, Extension.number)
            .limit(1)
        ).first()
        return str(row[0]) if row is not None else None


def _check_request(caller: Caller, ref: str | None) -> None:
    if ref is None:
        return
    with caller.session() as session:
        service.get_request(session, caller.tenant_id, ref)  # UnknownRequest when missing


async def _default_target(
    caller: Caller, what: Literal["transferred", "sent_to_voicemail"], target: str | None
) -> str:
    if target is None:
        target = await asyncio.to_thread(_service_manager_extension, caller)
    if target is None:
        field = "extension" if what == "transferred" else "mailbox"
        raise NotFound(
            "nobody holds the service manager role, so there is no default target",
            field=field,
            fix=f"name the {field}, or assign the service_manager role",
        )
    return target


async def _carry_out(
    control: Any,
    what: Literal["transferred", "sent_to_voicemail"],
    cdr_id: str,
    target: str,
    actor: str,
) -> dict[str, Any]:
    """The call engine acts on the call; a refusal or a failed outcome is a problem."""
    try:
        if what == "transferred":
            result: dict[str, Any] = await control.transfer(cdr_id, target, actor)
        else:
            result = await control.to_voicemail(cdr_id, target, actor)
    except CallControlError as exc:
        failed = CallActionFailed(str(exc), field="call_ref" if exc.status == 404 else None)
        failed.status = exc.status
        raise failed from exc
    if result.get("status") not in ("connected", "voicemail"):
        raise CallActionFailed(
            f"call {cdr_id}: {what.replace('_', ' ')} to {target} did not happen "
            f"({result.get('status')}, SIP {result.get('sip_code')}: {result.get('reason')}); "
            "the caller stays where they were",
            fix="try another target, or send the call to voicemail",
        )
    return result


async def _act_on_live_call(
    request: Request,
    caller: Caller,
    call_ref: str,
    what: Literal["transferred", "sent_to_voicemail"],
    target: str | None,
    ref: str | None,
) -> dict[str, Any]:
    """Check, have the call engine act on the live call, then record the action."""
    await _require(caller, CALL_READ)
    desk, the_call = await _the_call(request, caller, call_ref)
    if not the_call.live:
        raise CallEnded(
            f"call {call_ref!r} has ended: it can no longer be {what.replace('_', ' ')}"
        )
    control = getattr(request.app.state.server, "call_control", None)
    if control is None:
        raise CallUnavailable(
            "this server's call engine has no call control (transfer / send to voicemail)",
            fix="transfer the call from the phone meanwhile",
        )
    await asyncio.to_thread(_check_request, caller, ref)
    target = await _default_target(caller, what, target)
    actor = _actor(caller)
    result = await _carry_out(control, what, the_call.cdr_id, target, str(actor))
    if what == "sent_to_voicemail" and desk.bridge is not None:
        desk.bridge.sent_to_voicemail(the_call.cdr_id)  # its message becomes a request
    action: CallAction = await desk.tickets.record_call_action(
        caller.tenant_id,
        actor,
        what,
        cdr_id=the_call.cdr_id,
        call_id=the_call.cdr_id,
        target=target,
        ref=ref,
    )
    await desk.record(the_call.cdr_id, action)
    return {"call_ref": the_call.cdr_id, "action": action.as_cdr_entry(), "outcome": result}


@router.post(
    "/calls/{call_ref}/transfer", summary="Transfer the live call (to the service manager)"
)
async def transfer_call(
    call_ref: CallRef, body: CallTransferIn, request: Request, caller: CallerDep
) -> Any:
    return await _act_on_live_call(
        request, caller, call_ref, "transferred", body.extension, body.request
    )


@router.post("/calls/{call_ref}/voicemail", summary="Send the live call to voicemail")
async def voicemail_call(
    call_ref: CallRef, body: CallVoicemailIn, request: Request, caller: CallerDep
) -> Any:
    return await _act_on_live_call(
        request, caller, call_ref, "sent_to_voicemail", body.mailbox, body.request
    )
