"""The technician shield, and the one entry point for every inbound call (``start_call``).

Technicians do not take calls. A call reaches a technician's extension directly only when

1. the caller is a co-worker (calls from one of the tenant's extensions), or
2. the caller's contact or company has a service request assigned to that technician which
   the technician has marked as being worked on right now.

Every other call to a technician's extension goes into the tenant's front-desk flow. The
decision and its reason ("shielded: unknown caller +15551234567") are kept in the walk state
(``WalkState.shield``) and the path, and land on the CDR through ``cdr_record``.

What it must never do: look anything up (the ``CallContext`` carries the caller's requests),
or let a call through without a reason that names who and why.
"""

from __future__ import annotations

from datetime import datetime

from frontdesk.routing.actions import PathEntry, ShieldDecision, Step
from frontdesk.routing.context import CallContext, OpenRequest
from frontdesk.routing.directory import describe
from frontdesk.routing.evaluate import ring_directly, start
from frontdesk.routing.model import FlowDocument

SHIELD = "shield"


def _assigned_to(ctx: CallContext, extension: str) -> tuple[list[OpenRequest], list[OpenRequest]]:
    """The caller's open requests that concern the technician at ``extension``: (assigned to
    them, being worked on by them right now)."""
    user_id = ctx.directory.extension_user(extension)
    assigned, working = [], []
    for request in ctx.open_requests:
        mine = request.assignee_extension == extension or (
            user_id is not None and request.assignee_user_id == user_id
        )
        if mine:
            assigned.append(request)
        if (mine and request.working_now) or (
            user_id is not None and user_id in request.working_by
        ):
            working.append(request)
    return assigned, working


def _request_label(request: OpenRequest) -> str:
    return f"service request #{request.id}" + (f' "{request.title}"' if request.title else "")


def decide(ctx: CallContext) -> ShieldDecision | None:
    """The shield's verdict for this call, or None when the dialled number is not a
    technician's extension (the shield does not apply)."""
    extension = ctx.dialled.extension
    if extension is None or not ctx.dialled.technician:
        return None
    technician = describe(ctx.directory, extension)
    if ctx.caller_is_coworker:
        caller = describe(ctx.directory, ctx.caller)
        return ShieldDecision(extension, True, f"let through: caller {caller} is a co-worker")
    assigned, working = _assigned_to(ctx, extension)
    if working:
        request = working[0]
        return ShieldDecision(
            extension,
            True,
            f"let through: {ctx.caller_label} has {_request_label(request)}, which "
            f"{technician} is working on right now",
            request.id,
        )
    if assigned:
        request = assigned[0]
        return ShieldDecision(
            extension,
            False,
            f"shielded: {_request_label(request)} of {ctx.caller_label} is assigned to "
            f"{technician} but not being worked on right now",
            request.id,
        )
    if ctx.known_caller:
        return ShieldDecision(
            extension,
            False,
            f"shielded: {ctx.caller_label} has no service request that {technician} is "
            f"working on right now",
        )
    return ShieldDecision(extension, False, f"shielded: unknown caller {ctx.caller}")


def start_call(flow: FlowDocument, ctx: CallContext, now: datetime) -> Step:
    """Where every inbound call begins.

    - the main number: the tenant's flow (``flow``) from its start;
    - a technician's extension: the shield decides — let through rings the technician
      directly (no answer: their voicemail), shielded calls enter ``flow``;
    - any other extension: rings it directly (no answer: its voicemail).
    """
    extension = ctx.dialled.extension
    if extension is None:
        return start(flow, ctx, now)
    decision = decide(ctx)
    if decision is None:
        return ring_directly(flow.name, extension, ctx)
    where = "rings the technician" if decision.let_through else f'goes to flow "{flow.name}"'
    entry = PathEntry(SHIELD, SHIELD, f"{decision.reason}; the call {where}")
    if decision.let_through:
        return ring_directly(flow.name, extension, ctx, path=(entry,), shield=decision)
    return start(flow, ctx, now, path=(entry,), shield=decision)
