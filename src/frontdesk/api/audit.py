"""/api/v1/audit: the tenant's audit log (read), and verification of its hash chain.

Read-only: nothing in the API writes the audit log directly (``org.service`` does, for
every change). Verification covers only the caller's tenant's chain.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from frontdesk.api.common import CallerDep
from frontdesk.api.schemas import AuditEntryOut, AuditVerifyOut
from frontdesk.org import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryOut], summary="Audit entries in chain order")
def list_audit(
    caller: CallerDep,
    resource_type: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    resource_key: Annotated[str | None, Query(max_length=255,
                                              pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    with caller.session() as session:
        caller.require(session, "audit.read")
        rows = audit.entries(session, caller.tenant_id, resource_type=resource_type,
                             resource_key=resource_key, after_seq=after_seq, limit=limit)
        return [audit.decoded(row) for row in rows]


@router.get("/verify", response_model=AuditVerifyOut,
            summary="Recompute this tenant's hash chain and report tampering")
def verify(caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "audit.verify")
        report = audit.verify(session, caller.tenant_id)
    return {"ok": report.ok, "checked": report.checked,
            "problems": [{"seq": p.seq, "row_id": p.row_id, "problem": p.problem}
                         for p in report.problems]}
