"""/api/v1/role-assignments and /api/v1/permissions: who holds which role, and the
tenant's permission matrix (defaults plus the tenant's overrides).

Granting or revoking Technical Contact, Vendor or Administrator is an infrastructure change;
other roles are business. A permission override belongs to the domain of the resource it
is about. Every change goes through ``org.service``; this module never writes rows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.api.common import CallerDep, context
from frontdesk.api.schemas import (
    SLUG_PATTERN,
    USERNAME_PATTERN,
    Input,
    LongText,
    PermissionOut,
    RoleAssignmentOut,
    RoleName,
    Slug,
    Username,
    accepted,
)
from frontdesk.org.access import permission_matrix
from frontdesk.org.kinds_access import RoleAssignmentKind
from frontdesk.org.model import RoleAssignment
from frontdesk.org.roles import DEFAULT_PERMISSIONS, PERMISSIONS, Role
from frontdesk.org.service import Change

router = APIRouter(prefix="/api/v1", tags=["roles and permissions"])
KEY_PATTERN = (USERNAME_PATTERN[:-1] + ":[a-z_]{1,32}(@" + SLUG_PATTERN[1:-1] + ")?$")
PERMISSION_PATTERN = r"^[a-z_]{1,32}\.[a-z_]{1,32}$"


class RoleAssignmentIn(Input):
    user: Username
    role: RoleName
    site: Slug | None = None
    reason: LongText = ""


class PermissionIn(Input):
    allowed: bool | None
    reason: LongText = ""


def _assignment(session: Session, key: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, **snapshot}


@router.get("/role-assignments", response_model=list[RoleAssignmentOut],
            summary="Who holds which role")
def list_role_assignments(caller: CallerDep,
                          role: Annotated[RoleName | None, Query()] = None) -> Any:
    kind = RoleAssignmentKind()
    with caller.session() as session:
        caller.require(session, "role_assignment.read")
        query = select(RoleAssignment).where(RoleAssignment.tenant_id == caller.tenant_id)
        if role is not None:
            query = query.where(RoleAssignment.role == role)
        ctx = context(session, caller)
        rows = session.scalars(query.order_by(RoleAssignment.role, RoleAssignment.id))
        return [{"key": kind.key_of(row), **kind.snapshot(ctx, row)} for row in rows]


@router.post("/role-assignments", response_model=RoleAssignmentOut, status_code=201,
             responses=accepted(), summary="Give someone a role (tenant-wide or at a site)")
def grant_role(body: RoleAssignmentIn, caller: CallerDep) -> Response:
    fields = {"user": body.user, "role": body.role, "site": body.site}
    return caller.change(Change("role_assignment", "create", None, fields, body.reason),
                         _assignment, created=True)


@router.delete("/role-assignments/{key}", status_code=204, responses=accepted(),
               summary="Take a role away (key: user:role or user:role@site)")
def revoke_role(key: Annotated[str, Path(pattern=KEY_PATTERN)], caller: CallerDep) -> Response:
    return caller.change(Change("role_assignment", "delete", key))


@router.get("/permissions", response_model=list[PermissionOut],
            summary="The permission matrix: every role x permission, as this tenant has it")
def list_permissions(caller: CallerDep,
                     role: Annotated[RoleName | None, Query()] = None) -> Any:
    with caller.session() as session:
        caller.require(session, "permission.read")
        matrix = permission_matrix(session, caller.tenant_id)
    roles = [Role(role)] if role else list(Role)
    return [{"role": r.value, "permission": p, "allowed": p in matrix[r],
             "default": p in DEFAULT_PERMISSIONS[r]} for r in roles for p in sorted(PERMISSIONS)]


@router.put("/permissions/{role}/{permission}", response_model=PermissionOut,
            responses=accepted(),
            summary="Allow or deny a permission for a role (null: back to the default)")
def set_permission(role: RoleName,
                   permission: Annotated[str, Path(pattern=PERMISSION_PATTERN)],
                   body: PermissionIn, caller: CallerDep) -> Response:
    return caller.change(Change("permission", "update", f"{role}/{permission}",
                                {"allowed": body.allowed}, body.reason))
