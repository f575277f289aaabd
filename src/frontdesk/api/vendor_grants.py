"""/api/v1/vendor-grants: time-boxed, scoped access for a Vendor, granted by the Technical
Contact; it ends by itself, and everything done with it is audited with the grant's id.

Revoking keeps the row (history). Every change goes through ``org.service``; this module
never writes rows itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.api.common import CallerDep, context
from frontdesk.api.schemas import (
    IdPath,
    Input,
    Moment,
    Username,
    VendorGrantOut,
    accepted,
)
from frontdesk.org.model import VendorGrant
from frontdesk.org.resources import kind_of
from frontdesk.org.service import Change
from frontdesk.store.models import utcnow

router = APIRouter(prefix="/api/v1/vendor-grants", tags=["vendor grants"])
Permission = Annotated[str, Field(pattern=r"^[a-z_]{1,32}\.[a-z_]{1,32}$")]


class VendorGrantIn(Input):
    user: Username
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=50)]
    starts: Moment | None = None
    ends: Moment
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _grant(session: Session, key: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    starts, ends = (datetime.fromisoformat(snapshot[k]) for k in ("starts", "ends"))
    return {**snapshot, "active": snapshot["revoked_at"] is None and starts <= now < ends}


@router.get("", response_model=list[VendorGrantOut], summary="Vendor grants")
def list_grants(caller: CallerDep) -> Any:
    kind = kind_of("vendor_grant")
    with caller.session() as session:
        caller.require(session, "vendor_grant.read")
        ctx = context(session, caller)
        rows = session.scalars(select(VendorGrant).where(VendorGrant.tenant_id == caller.tenant_id)
                               .order_by(VendorGrant.id))
        return [_grant(session, str(r.id), kind.snapshot(ctx, r)) for r in rows]


@router.post("", response_model=VendorGrantOut, status_code=201, responses=accepted(),
             summary="Grant a Vendor scoped access until a given time")
def create_grant(body: VendorGrantIn, caller: CallerDep) -> Response:
    fields: dict[str, Any] = {"user": body.user, "permissions": body.permissions,
                              "ends": body.ends.isoformat(), "reason": body.reason}
    if body.starts is not None:
        fields["starts"] = body.starts.isoformat()
    return caller.change(Change("vendor_grant", "create", None, fields, body.reason), _grant,
                         created=True)


@router.delete("/{grant_id}", response_model=VendorGrantOut, responses=accepted(),
               summary="Revoke a vendor grant (the record stays)")
def revoke_grant(grant_id: IdPath, caller: CallerDep) -> Response:
    return caller.change(Change("vendor_grant", "delete", str(grant_id)), _grant)
