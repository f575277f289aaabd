"""/api/v1/coverage: responsibilities nobody holds, like failing health checks.

Read-only; the checks live in ``org.coverage``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from frontdesk.api.common import CallerDep
from frontdesk.api.schemas import CoverageOut
from frontdesk.org import coverage
from frontdesk.store.models import Tenant, utcnow

router = APIRouter(prefix="/api/v1/coverage", tags=["coverage"])


@router.get("", response_model=CoverageOut, summary="Who is responsible for what: the gaps")
def get_coverage(caller: CallerDep) -> Any:
    with caller.session() as session:
        caller.require(session, "coverage.read")
        tenant = session.get(Tenant, caller.tenant_id)
        assert tenant is not None
        report = coverage.report(session, tenant, utcnow())
    return {"tenant": report.tenant, "status": "ok" if report.ok else "failing",
            "checks": list(report.checks), "problems": [asdict(p) for p in report.problems]}
