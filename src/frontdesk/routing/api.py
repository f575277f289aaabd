"""/api/v1/flows: call flows over REST — list, read (published, draft, any version), save and
discard a draft, validate, publish, roll back, and simulate a call.

Every change goes through ``org.service`` as the signed-in caller (``routing/kind.py``'s
``flow`` kind): permission ``flow.draft`` / ``flow.discard`` / ``flow.publish`` /
``flow.rollback``, a change request (HTTP 202) when publishing sends calls to a new outside
number (infrastructure, the Technical Contact approves), one version and one audit row.
Reads and the simulator need ``flow.read``; the simulator reads exactly what the call
engine reads (``routing.simulate.simulate_for_tenant``).

Errors are application/problem+json naming the flow, the step and the fix — also for a
document that does not fit the schema (``FlowRoute`` re-explains Pydantic's errors the way
``frontdesk flow validate`` does). This module must never write flow rows itself, nor hold
routing logic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from frontdesk.api.common import Caller, CallerDep, outcome_body, outcome_response
from frontdesk.api.problems import FieldProblem, problem_response
from frontdesk.api.schemas import LongText, accepted
from frontdesk.org import service
from frontdesk.org.audit import iso
from frontdesk.org.errors import Invalid, NotFound
from frontdesk.org.service import Change
from frontdesk.routing import versions
from frontdesk.routing.api_models import (
    FlowNamePath,
    FlowOut,
    ProblemOut,
    PublishedOut,
    ReasonIn,
    RollbackIn,
    SimulateIn,
    SimulationOut,
    ValidationOut,
    VersionDocumentOut,
    VersionOut,
    VersionPath,
)
from frontdesk.routing.directory import load_directory
from frontdesk.routing.kind import FlowChanges, FlowRejected, outside_numbers
from frontdesk.routing.model import FlowDocument, FlowVersion
from frontdesk.routing.simulate import (
    SimulationError,
    SimulationRequest,
    render,
    simulate_for_tenant,
)
from frontdesk.routing.validate import FlowInvalid, _explain, check_flow, parse_flow

_NODE = re.compile(r'node "([^"]+)"')
_FIX = "correct the flow as the message says; `frontdesk flow validate` shows the same"


def _problems(problems: tuple[str, ...] | list[str]) -> list[FieldProblem]:
    """Per problem: the field (``nodes.<step>`` or ``flow``), the sentence, the fix."""
    found = []
    for text in problems:
        node = _NODE.search(text)
        field = f"nodes.{node.group(1)}" if node else "flow"
        found.append(FieldProblem(field=field, message=text, fix=_FIX))
    return found


def _rejected(problems: tuple[str, ...] | list[str], status: int = 422) -> Response:
    first = problems[0] if problems else "the flow cannot be used"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problem_response(status, "Invalid flow", first + more, _FIX, _problems(problems))


class FlowRoute(APIRoute):
    """Routes whose bad flow documents and unusable flows answer in routing's own words:
    ``flow "x" node "ring-sm": "timeout" must be at most 600``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def explained(request: Request) -> Response:
            try:
                return await handle(request)
            except FlowRejected as exc:
                return _rejected(exc.problems)
            except RequestValidationError as exc:
                body = exc.body if isinstance(exc.body, dict) else None
                if body is None or "nodes" not in body:
                    raise
                name = body.get("name") if isinstance(body.get("name"), str) else "(unnamed)"
                return _rejected([_explain(str(name), _without_body(e)) for e in exc.errors()])

        return explained


def _without_body(error: Any) -> dict[str, Any]:
    loc = tuple(error.get("loc", ()))
    return {**error, "loc": loc[1:] if loc[:1] == ("body",) else loc}


router = APIRouter(prefix="/api/v1/flows", tags=["call flows"], route_class=FlowRoute)
ReasonQuery = Annotated[LongText, Query(description="why (kept in the audit log)")]


def _when(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _renderer(tenant_id: int) -> Callable[[Session, str, dict[str, Any]], dict[str, Any]]:
    """Renders a flow snapshot of ``tenant_id`` as ``FlowOut``."""

    def render_flow(session: Session, key: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        row = versions.published_version(session, tenant_id, key)
        return {"name": key, "draft_version": snapshot.get("draft_version"),
                "published_version": snapshot.get("published_version"),
                "published_by": snapshot.get("published_by"),
                "published_at": _when(row.published_at) if row is not None else None,
                "published_note": snapshot.get("published_note"),
                "outside_numbers": snapshot.get("outside_numbers") or []}

    return render_flow


def _change(caller: Caller, change: Change) -> Response:
    """Run a flow change as the caller; 200 with the flow, or 202 with the change request."""
    with caller.session() as session:
        outcome = service.apply_change(session, caller.actor, "api", change)
        body = outcome_body(session, outcome, _renderer(caller.tenant_id))
    caller.bus.publish(outcome.events)
    return outcome_response(outcome, body)


def _version_out(row: FlowVersion) -> dict[str, Any]:
    return {"version": row.version, "state": row.state, "created_by": row.created_by,
            "created_at": _when(row.created_at), "published_by": row.published_by,
            "published_at": _when(row.published_at), "note": row.note}


def _missing(name: str, what: str) -> NotFound:
    return NotFound(f'flow "{name}" has no {what}',
                    fix="list the flow's versions (GET /api/v1/flows/{name}/versions)")


# --- reading -----------------------------------------------------------------------------------


@router.get("", response_model=list[FlowOut], summary="The tenant's call flows")
def list_flows(caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "flow.read")
        found = []
        for flow in versions.list_flows(session, caller.tenant_id):
            draft = versions.draft_version(session, caller.tenant_id, flow.name)
            current = versions.published_version(session, caller.tenant_id, flow.name)
            found.append({
                "name": flow.name, "draft_version": draft.version if draft else None,
                "published_version": current.version if current else None,
                "published_by": current.published_by if current else None,
                "published_at": _when(current.published_at) if current else None,
                "published_note": current.note if current else None,
                "outside_numbers": outside_numbers(current.document if current else None)})
        return found


@router.get("/{name}/published", response_model=PublishedOut,
            summary="What calls run: the published version (or the front-desk template)")
def get_published(name: FlowNamePath, caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "flow.read")
        try:
            loaded = versions.load_flow(session, caller.tenant_id, name)
        except versions.VersionError:
            raise _missing(name, "published version") from None
        return {"source": loaded.source, "label": loaded.label, "version": loaded.version,
                "published_by": loaded.published_by,
                "published_at": _when(loaded.published_at),
                "document": loaded.document.to_json()}


@router.get("/{name}/draft", response_model=VersionDocumentOut, summary="The draft being edited")
def get_draft(name: FlowNamePath, caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "flow.read")
        row = versions.draft_version(session, caller.tenant_id, name)
        if row is None:
            raise _missing(name, "draft")
        return {**_version_out(row), "document": row.document}


@router.get("/{name}/versions", response_model=list[VersionOut],
            summary="Every version of a flow, newest first")
def list_versions(name: FlowNamePath, caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "flow.read")
        rows = versions.list_versions(session, caller.tenant_id, name)
        if not rows:
            raise NotFound(f'flow "{name}" has no versions',
                           fix="save a draft first (PUT /api/v1/flows/{name}/draft)")
        return [_version_out(row) for row in rows]


@router.get("/{name}/versions/{version}", response_model=VersionDocumentOut,
            summary="One version of a flow, with its document")
def get_version(name: FlowNamePath, version: VersionPath, caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "flow.read")
        row = versions.get_version(session, caller.tenant_id, name, version)
        if row is None:
            raise _missing(name, f"version {version}")
        return {**_version_out(row), "document": row.document}


# --- changing ----------------------------------------------------------------------------------


@router.put("/{name}/draft", response_model=FlowOut, responses=accepted(),
            summary="Save the draft (a flow document; calls do not run it until published)")
def put_draft(name: FlowNamePath, document: FlowDocument, caller: CallerDep,
              reason: ReasonQuery = "") -> Response:
    if document.name != name:
        raise Invalid(f'the document is flow "{document.name}", not "{name}"', field="name",
                      fix=f"set name to {name!r} in the document, or PUT it to its own name")
    return _change(caller, FlowChanges(name, reason).draft(document))


@router.delete("/{name}/draft", response_model=FlowOut, responses=accepted(),
               summary="Discard the draft")
def delete_draft(name: FlowNamePath, caller: CallerDep,
                 reason: ReasonQuery = "") -> Response:
    return _change(caller, FlowChanges(name, reason).discard())


@router.post("/{name}/publish", response_model=FlowOut, responses=accepted(
    "Publishing sends calls to a new outside number (infrastructure): a change request "
    "waits for the Technical Contact."), summary="Publish the draft: from now on calls run it")
def publish(name: FlowNamePath, body: ReasonIn, caller: CallerDep) -> Response:
    return _change(caller, FlowChanges(name, body.reason).publish())


@router.post("/{name}/rollback", response_model=FlowOut, responses=accepted(),
             summary="Publish an earlier version again (as a new version)")
def rollback(name: FlowNamePath, body: RollbackIn, caller: CallerDep) -> Response:
    return _change(caller, FlowChanges(name, body.reason).rollback(body.to_version))


# --- checking ----------------------------------------------------------------------------------


@router.post("/{name}/validate", response_model=ValidationOut,
             summary="Check a flow document (or, with no body, the draft) against the "
                     "tenant's people, groups and mailboxes")
def validate(name: FlowNamePath, caller: CallerDep,
             document: FlowDocument | None = None) -> Any:
    with caller.session() as session:
        caller.require(session, "flow.read")
        if document is None:
            row = versions.draft_version(session, caller.tenant_id, name)
            if row is None:
                raise _missing(name, "draft (send a document to check instead)")
            try:
                document = parse_flow(row.document)
            except FlowInvalid as exc:
                return _validation(name, exc.problems)
        try:
            check_flow(document, load_directory(session, caller.tenant_id))
        except FlowInvalid as exc:
            return _validation(name, exc.problems)
        return _validation(name, ())


def _validation(name: str, problems: tuple[str, ...]) -> dict[str, Any]:
    found = [ProblemOut(node=(m.group(1) if (m := _NODE.search(p)) else None), message=p)
             for p in problems]
    return {"flow": name, "valid": not problems, "problems": found}


@router.post("/simulate", response_model=SimulationOut,
             summary="The path a call would take, node by node, with the reason for each "
                     "branch (same inputs as `frontdesk flow simulate`)")
def simulate(body: SimulateIn, caller: CallerDep) -> Any:
    request = SimulationRequest(
        caller=body.caller, to=body.to, at=body.at, no_answer=tuple(body.no_answer),
        busy=tuple(body.busy), keys=body.press, vip=body.vip, emergency=body.emergency,
        variables=dict(body.variables))
    with caller.session() as session:
        caller.require(session, "flow.read")
        try:
            run = simulate_for_tenant(session, caller.tenant_id, request, now=datetime.now(UTC))
        except SimulationError as exc:
            raise Invalid(str(exc), field=_simulation_field(str(exc)),
                          fix="name an extension, user, group or role of this tenant") from None
        except versions.VersionError as exc:
            raise NotFound(str(exc), fix="publish the flow first") from None
        except FlowInvalid as exc:
            raise FlowRejected(exc.problems, field="flow") from None
    return {"tenant": caller.tenant_slug, **run.simulation.as_dict(),
            "runs": run.flow.label, "lines": render(run)}


def _simulation_field(message: str) -> str:
    if message.startswith("--to"):
        return "to"
    return "busy" if "busy" in message else "no_answer"
