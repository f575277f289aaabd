"""/api/v1/change-requests and /api/v1/versions: deciding cross-domain changes, and the
version history and rollback of every resource.

Approving or rejecting needs ownership of a domain the request waits for (the matrix does
not grant it; the domain owners are in ``org.roles.DOMAIN_OWNERS``). A rollback is an
ordinary change through ``org.service`` (permission, change request, audit); every kind
registered with ``org`` is accepted, and a kind with its own rollback (call flows republish
an earlier published version) is pointed there. This module never writes rows itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from frontdesk.api.common import CallerDep, outcome_body, plain
from frontdesk.api.schemas import (
    ChangeRequestOut,
    IdPath,
    Input,
    LongText,
    ResourceType,
    VersionOut,
    accepted,
)
from frontdesk.org import service, versions
from frontdesk.org.audit import iso
from frontdesk.org.errors import Invalid, NotFound
from frontdesk.org.resources import kind_of

router = APIRouter(prefix="/api/v1", tags=["change requests and versions"])
Key = Annotated[str, Query(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class DecisionIn(Input):
    comment: LongText = ""


class RollbackIn(Input):
    resource_type: ResourceType
    key: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
    version: Annotated[int, Field(ge=1, le=2**31 - 1)]
    reason: LongText = ""


@router.get("/change-requests", response_model=list[ChangeRequestOut],
            summary="Change requests, newest first")
def list_change_requests(caller: CallerDep, status: Annotated[
        Literal["open", "applied", "rejected"] | None, Query()] = None) -> Any:
    with caller.session() as session:
        caller.require(session, "change_request.read")
        return [service.summary(r) for r in
                service.list_change_requests(session, caller.tenant_id, status)]


@router.get("/change-requests/{request_id}", response_model=ChangeRequestOut,
            summary="One change request")
def get_change_request(request_id: IdPath, caller: CallerDep) -> Any:
    with caller.session() as session:
        request = service.get_change_request(session, caller.actor, request_id)
        if request.requested_by_id != caller.actor.user_id:
            caller.require(session, "change_request.read")
        return service.summary(request)


def _decide(request_id: int, approve: bool, body: DecisionIn, caller: CallerDep) -> Response:
    with caller.session() as session:
        outcome = service.decide(session, caller.actor, "api", request_id, approve=approve,
                                 comment=body.comment)
        assert outcome.change_request is not None
        body_out = service.summary(outcome.change_request)
    caller.bus.publish(outcome.events)
    return JSONResponse(body_out)


@router.post("/change-requests/{request_id}/approve", response_model=ChangeRequestOut,
             summary="Approve (as owner of a domain it waits for); the last approval applies it")
def approve(request_id: IdPath, body: DecisionIn, caller: CallerDep) -> Response:
    return _decide(request_id, True, body, caller)


@router.post("/change-requests/{request_id}/reject", response_model=ChangeRequestOut,
             summary="Reject, with a comment saying why")
def reject(request_id: IdPath, body: DecisionIn, caller: CallerDep) -> Response:
    return _decide(request_id, False, body, caller)


@router.get("/versions", response_model=list[VersionOut],
            summary="Every version of one resource, oldest first")
def list_versions(resource_type: Annotated[ResourceType, Query()], key: Key,
                  caller: CallerDep) -> Any:
    kind = kind_of(resource_type)
    with caller.session() as session:
        caller.require(session, f"{kind.name}.read")
        tenant_id = caller.tenant_id
        rows = versions.history(session, tenant_id, kind.name, key)
        if not rows:
            raise NotFound(f"{kind.title} {key!r} has no recorded versions",
                           fix="versions start with its first change through Frontdesk")
        return [{"version": v.version, "at": iso(v.at), "actor": v.actor,
                 "change_request_id": v.change_request_id, "snapshot": v.snapshot}
                for v in rows]


@router.post("/versions/rollback", responses={200: {"description": "rolled back"},
                                              **accepted()},
             summary="Bring a resource back to an earlier version")
def rollback(body: RollbackIn, caller: CallerDep) -> Response:
    kind = kind_of(body.resource_type)
    if "rollback" in kind.actions and "update" not in kind.actions:
        raise Invalid(f"a {kind.title} is not rolled back here: it has its own rollback, which "
                      "republishes an earlier published version", field="resource_type",
                      fix=f"POST /api/v1/{kind.name}s/{body.key}/rollback with to_version "
                          f"(GET /api/v1/{kind.name}s/{body.key}/versions lists them)")
    with caller.session() as session:
        outcome = service.rollback(session, caller.actor, "api", body.resource_type, body.key,
                                   body.version, reason=body.reason)
        out = outcome_body(session, outcome, plain)
    caller.bus.publish(outcome.events)
    if outcome.status == "requested":
        return JSONResponse(out, status_code=202)
    return JSONResponse({"status": outcome.status, "version": outcome.version,
                         "resource": out})
