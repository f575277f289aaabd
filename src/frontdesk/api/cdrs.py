"""/api/v1/cdrs: call detail records of the caller's tenant (read-only).

Reads ``store``'s cdrs table through ``store.repo``; never another tenant's rows, never a
write.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from frontdesk.api.common import CallerDep
from frontdesk.api.schemas import CdrOut, Moment
from frontdesk.org.audit import iso
from frontdesk.org.errors import NotFound
from frontdesk.store import repo
from frontdesk.store.models import CDR_DISPOSITIONS, Cdr, Tenant

router = APIRouter(prefix="/api/v1/cdrs", tags=["CDRs"])
Disposition = Annotated[str | None, Query(pattern="^(" + "|".join(CDR_DISPOSITIONS) + ")$")]


def cdr_out(row: Cdr) -> dict[str, Any]:
    """One CDR as the API shows it (times in ISO 8601 UTC)."""
    def moment(value: Any) -> str | None:
        return iso(value) if value is not None else None

    return {"id": row.id, "call_id": row.call_id, "caller": row.caller,
            "caller_name": row.caller_name, "callee": row.callee,
            "callee_answered_by": row.callee_answered_by, "started_at": iso(row.started_at),
            "answered_at": moment(row.answered_at), "ended_at": moment(row.ended_at),
            "disposition": row.disposition, "hangup_side": row.hangup_side,
            "duration": row.duration, "billsec": row.billsec, "sip_code": row.sip_code}


@router.get("", response_model=list[CdrOut], summary="Call detail records, newest first")
def list_cdrs(
    caller: CallerDep,
    since: Annotated[Moment | None, Query()] = None,
    until: Annotated[Moment | None, Query()] = None,
    number: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9+*#._@-]{1,128}$")] = None,
    disposition: Disposition = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    with caller.session() as session:
        caller.require(session, "cdr.read")
        tenant = session.get(Tenant, caller.tenant_id)
        assert tenant is not None
        rows = repo.list_cdrs(session, tenant, limit, since=since, until=until, number=number,
                              disposition=disposition)
        return [cdr_out(r) for r in rows]


@router.get("/{cdr_id}", response_model=CdrOut, summary="One call detail record")
def get_cdr(cdr_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,36}$")],
            caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "cdr.read")
        row = repo.get_cdr(session, cdr_id)
        if row is None or row.tenant_id != caller.tenant_id:
            raise NotFound(f"call detail record {cdr_id!r} does not exist in your tenant",
                           fix="list them with GET /api/v1/cdrs")
        return cdr_out(row)
