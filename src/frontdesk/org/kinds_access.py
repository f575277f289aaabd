"""Resource kinds for access itself: role assignments, permission overrides, vendor grants
and API tokens.

Granting a role that owns or works on infrastructure (Technical Contact, Vendor,
Administrator) is an infrastructure change; adjusting a permission belongs to the domain of
the resource it is about. Vendor grants and API tokens are never deleted, only revoked, so
their history stays. These kinds must never check permissions, audit or commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from frontdesk.org.errors import Conflict, Invalid
from frontdesk.org.model import ApiToken, PermissionOverride, RoleAssignment, VendorGrant
from frontdesk.org.resources import (
    ApplyContext,
    ResourceKind,
    register,
    site_by_slug,
    site_slug_of,
    text_field,
    unknown_fields,
    user_by_name,
    username_of,
)
from frontdesk.org.roles import (
    DEFAULT_PERMISSIONS,
    NOT_GRANTABLE,
    PERMISSIONS,
    ROLE_DOMAIN,
    Domain,
    Role,
    parse_role,
)
from frontdesk.store.models import User

MAX_GRANT = timedelta(days=30)
MAX_TOKEN_DAYS = 3650
#: The domain of each resource type's permissions (for permission overrides).
PERMISSION_DOMAINS: Mapping[str, Domain] = {
    "tenant": Domain.INFRASTRUCTURE,
    "site": Domain.INFRASTRUCTURE,
    "vendor_grant": Domain.INFRASTRUCTURE,
    "audit": Domain.INFRASTRUCTURE,
}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _moment(fields: Mapping[str, Any], name: str, default: datetime | None) -> datetime:
    value = fields.get(name)
    if value is None:
        if default is None:
            raise Invalid(f"{name} is required", field=name,
                          fix=f"give {name} as an ISO 8601 time, e.g. 2030-01-31T18:00:00Z")
        return default
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise Invalid(f"{name} {value!r} is not a time", field=name,
                      fix="use ISO 8601, e.g. 2030-01-31T18:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class RoleAssignmentKind(ResourceKind):
    """Key: ``username:role`` or ``username:role@site``."""

    name = "role_assignment"
    title = "role assignment"
    base_domain = None
    actions = ("create", "delete")

    @staticmethod
    def make_key(username: str, role: str, site: str | None) -> str:
        return f"{username}:{role}" + (f"@{site}" if site else "")

    def _parse(self, key: str) -> tuple[str, str, str | None]:
        username, _, role_site = key.rpartition(":")  # usernames may hold "@", never ":"
        role, _, site = role_site.partition("@")
        return username, role, site or None

    def load(self, ctx: ApplyContext, key: str) -> RoleAssignment | None:
        username, role, site = self._parse(key)
        user = ctx.session.scalar(select(User).where(User.tenant_id == ctx.tenant_id,
                                                     User.username == username))
        if user is None:
            return None
        query = select(RoleAssignment).where(RoleAssignment.tenant_id == ctx.tenant_id,
                                             RoleAssignment.user_id == user.id,
                                             RoleAssignment.role == role)
        if site is None:
            query = query.where(RoleAssignment.site_id.is_(None))
        else:
            site_row = self._site(ctx, site)
            if site_row is None:
                return None
            query = query.where(RoleAssignment.site_id == site_row)
        return ctx.session.scalar(query.limit(1))

    def _site(self, ctx: ApplyContext, slug: str) -> int | None:
        from frontdesk.org.model import Site

        return ctx.session.scalar(select(Site.id).where(Site.tenant_id == ctx.tenant_id,
                                                        Site.slug == slug))

    def key_of(self, row: RoleAssignment) -> str:
        site = _site_slug(row) if row.site_id is not None else None
        return self.make_key(username_of_row(row), row.role, site)

    def snapshot(self, ctx: ApplyContext, row: RoleAssignment) -> dict[str, Any]:
        return {"user": username_of(ctx.session, row.user_id), "role": row.role,
                "site": site_slug_of(ctx.session, row.site_id)}

    def site_id(self, ctx: ApplyContext, row: RoleAssignment | None,
                fields: Mapping[str, Any]) -> int | None:
        if row is not None:
            return row.site_id
        return site_by_slug(ctx, fields["site"], "site").id if fields.get("site") else None

    def field_domain(self, field: str, old: Any, new: Any) -> set[Domain]:
        if field != "role":
            return set()
        return {ROLE_DOMAIN[Role(v)] for v in (old, new) if v is not None}

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        unknown_fields(self, fields, {"user", "role", "site"})
        username = text_field(fields, "user", required=True, max_length=128) or ""
        try:
            role = parse_role(str(fields.get("role") or ""))
        except ValueError as exc:
            raise Invalid(str(exc), field="role", fix="name one of the roles listed") from None
        site = text_field(fields, "site", max_length=64)
        return self.make_key(username, role.value, site)

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        if action != "create":
            return {}
        username, role, site = self._parse(key or "")
        user = user_by_name(ctx, username, "user")
        if site is not None:
            site_by_slug(ctx, site, "site")
        if self.load(ctx, key or "") is not None:
            raise Conflict(f"{user.username} already holds {Role(role).label}"
                           + (f" at site {site}" if site else ""), field="role",
                           fix="nothing to do, or revoke it first")
        return {"user": user.username, "role": role, "site": site}

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Any:
        user = user_by_name(ctx, fields["user"], "user")
        site = site_by_slug(ctx, fields["site"], "site").id if fields["site"] else None
        row = RoleAssignment(tenant_id=ctx.tenant_id, user_id=user.id, role=fields["role"],
                             site_id=site)
        ctx.session.add(row)
        return row

    def delete(self, ctx: ApplyContext, row: RoleAssignment) -> dict[str, Any] | None:
        if row.role == Role.ADMINISTRATOR and row.site_id is None:
            others = ctx.session.scalar(select(func.count()).select_from(RoleAssignment).where(
                RoleAssignment.tenant_id == row.tenant_id, RoleAssignment.role == row.role,
                RoleAssignment.site_id.is_(None), RoleAssignment.id != row.id))
            if not others:
                raise Conflict("this is the tenant's last administrator",
                               fix="assign another administrator first, or use the CLI "
                                   "on the server as local administrator")
        ctx.session.delete(row)
        return None


def username_of_row(row: RoleAssignment) -> str:
    from sqlalchemy.orm import object_session

    session = object_session(row)
    return (username_of(session, row.user_id) if session else None) or f"#{row.user_id}"


def _site_slug(row: RoleAssignment) -> str:
    from sqlalchemy.orm import object_session

    session = object_session(row)
    return (site_slug_of(session, row.site_id) if session else None) or f"#{row.site_id}"


@dataclass
class PermissionEntry:
    """One cell of a tenant's matrix: ``role`` x ``permission`` and its override, if any."""

    tenant_id: int
    role: Role
    permission: str
    override: PermissionOverride | None


class PermissionKind(ResourceKind):
    """Key: ``role/permission``, e.g. ``agent/cdr.read``. Update with {"allowed": bool|null}
    (null: back to the default)."""

    name = "permission"
    title = "permission"
    actions = ("update",)
    read_only_fields = frozenset({"role", "permission", "default"})

    def load(self, ctx: ApplyContext, key: str) -> PermissionEntry | None:
        role_name, _, permission = key.partition("/")
        if role_name not in Role.__members__.values() or permission not in PERMISSIONS:
            return None
        override = ctx.session.scalar(select(PermissionOverride).where(
            PermissionOverride.tenant_id == ctx.tenant_id, PermissionOverride.role == role_name,
            PermissionOverride.permission == permission))
        return PermissionEntry(ctx.tenant_id or 0, Role(role_name), permission, override)

    def key_of(self, row: PermissionEntry) -> str:
        return f"{row.role.value}/{row.permission}"

    def snapshot(self, ctx: ApplyContext, row: PermissionEntry) -> dict[str, Any]:
        default = row.permission in DEFAULT_PERMISSIONS[row.role]
        allowed = row.override.allowed if row.override is not None else default
        return {"role": row.role.value, "permission": row.permission, "allowed": allowed,
                "default": default}

    def field_domain(self, field: str, old: Any, new: Any) -> set[Domain]:
        return set()

    def domains(self, action: str, key: str,
                changed: Mapping[str, tuple[Any, Any]]) -> frozenset[Domain]:
        resource = key.partition("/")[2].partition(".")[0]
        return frozenset({PERMISSION_DOMAINS.get(resource, Domain.BUSINESS)})

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, {"allowed"})
        assert isinstance(row, PermissionEntry)
        if row.role is Role.ADMINISTRATOR:
            raise Invalid("the administrator always holds every permission", field="role",
                          fix="adjust another role")
        allowed = fields.get("allowed")
        if allowed is not None and not isinstance(allowed, bool):
            raise Invalid(f"allowed must be true, false or null, not {allowed!r}",
                          field="allowed", fix="send true, false, or null for the default")
        return {"allowed": row.permission in DEFAULT_PERMISSIONS[row.role]
                if allowed is None else allowed}

    def update(self, ctx: ApplyContext, row: PermissionEntry, fields: Mapping[str, Any]) -> None:
        allowed = bool(fields["allowed"])
        if row.override is not None:
            ctx.session.delete(row.override)
            ctx.session.flush()
            row.override = None
        if allowed != (row.permission in DEFAULT_PERMISSIONS[row.role]):
            row.override = PermissionOverride(tenant_id=row.tenant_id, role=row.role.value,
                                              permission=row.permission, allowed=allowed)
            ctx.session.add(row.override)


class VendorGrantKind(ResourceKind):
    """Key: the grant's id. Create to grant, delete to revoke (the row stays)."""

    name = "vendor_grant"
    title = "vendor grant"
    base_domain = Domain.INFRASTRUCTURE
    actions = ("create", "delete")
    read_only_fields = frozenset({"id", "granted_by", "revoked_at"})

    def load(self, ctx: ApplyContext, key: str) -> VendorGrant | None:
        if not key.isdigit() or len(key) > 9:
            return None
        row = ctx.session.get(VendorGrant, int(key))
        return row if row is not None and row.tenant_id == ctx.tenant_id else None

    def key_of(self, row: VendorGrant) -> str:
        return str(row.id)

    def snapshot(self, ctx: ApplyContext, row: VendorGrant) -> dict[str, Any]:
        return {"id": row.id, "user": username_of(ctx.session, row.user_id),
                "permissions": sorted(row.permissions), "starts": _iso(row.starts_at),
                "ends": _iso(row.ends_at), "granted_by": row.granted_by, "reason": row.reason,
                "revoked_at": _iso(row.revoked_at)}

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> None:
        return None

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        if action != "create":
            return {}
        unknown_fields(self, fields, {"user", "permissions", "starts", "ends", "reason"})
        user = user_by_name(ctx, text_field(fields, "user", required=True) or "", "user")
        held = ctx.session.scalar(select(func.count()).select_from(RoleAssignment).where(
            RoleAssignment.user_id == user.id, RoleAssignment.role == Role.VENDOR))
        if not held:
            raise Invalid(f"{user.username} does not hold the Vendor role", field="user",
                          fix=f"assign it first: role_assignment {user.username}:vendor")
        permissions = fields.get("permissions")
        if (not isinstance(permissions, list) or not permissions
                or any(p not in PERMISSIONS or p in NOT_GRANTABLE for p in permissions)):
            raise Invalid(f"permissions {permissions!r} are not grantable", field="permissions",
                          fix="list permissions such as tenant.update; never "
                              + ", ".join(sorted(NOT_GRANTABLE)))
        starts = _moment(fields, "starts", ctx.now)
        ends = _moment(fields, "ends", None)
        if not starts < ends <= starts + MAX_GRANT or ends <= ctx.now:
            raise Invalid(f"the grant would run from {_iso(starts)} to {_iso(ends)}",
                          field="ends", fix="end it in the future, after it starts, "
                                            f"at most {MAX_GRANT.days} days later")
        reason = text_field(fields, "reason", required=True, max_length=1000)
        return {"user": user.username, "permissions": sorted(set(permissions)),
                "starts": _iso(starts), "ends": _iso(ends), "reason": reason}

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> VendorGrant:
        row = VendorGrant(tenant_id=ctx.tenant_id, user_id=user_by_name(ctx, fields["user"],
                                                                         "user").id,
                          permissions=fields["permissions"],
                          starts_at=_moment(fields, "starts", None),
                          ends_at=_moment(fields, "ends", None), granted_by=ctx.actor.name,
                          granted_by_id=ctx.actor.user_id, reason=fields["reason"])
        ctx.session.add(row)
        return row

    def delete(self, ctx: ApplyContext, row: VendorGrant) -> dict[str, Any] | None:
        if row.revoked_at is not None:
            raise Conflict(f"vendor grant {row.id} was already revoked at {_iso(row.revoked_at)}",
                           fix="nothing to do")
        row.revoked_at = ctx.now
        ctx.session.flush()
        return self.snapshot(ctx, row)


class ApiTokenKind(ResourceKind):
    """Key: the token's id. Anyone may make and revoke their own tokens; making one for
    someone else is for the local administrator only."""

    name = "api_token"
    title = "API token"
    base_domain = None
    actions = ("create", "delete")
    secret_fields = frozenset({"token_hash"})
    read_only_fields = frozenset({"id", "revoked_at"})

    def load(self, ctx: ApplyContext, key: str) -> ApiToken | None:
        if not key.isdigit() or len(key) > 9:
            return None
        row = ctx.session.get(ApiToken, int(key))
        return row if row is not None and row.tenant_id == ctx.tenant_id else None

    def key_of(self, row: ApiToken) -> str:
        return str(row.id)

    def snapshot(self, ctx: ApplyContext, row: ApiToken) -> dict[str, Any]:
        return {"id": row.id, "user": username_of(ctx.session, row.user_id), "name": row.name,
                "kind": row.kind, "expires_at": _iso(row.expires_at),
                "revoked_at": _iso(row.revoked_at)}

    def is_personal(self, ctx: ApplyContext, action: str, key: str | None,
                    fields: Mapping[str, Any], row: Any | None) -> bool:
        if row is not None:
            return bool(row.user_id == ctx.actor.user_id)
        return fields.get("user") in (None, ctx.actor.name) and ctx.actor.user_id is not None

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> None:
        return None

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        if action != "create":
            return {}
        unknown_fields(self, fields, {"user", "name", "expires_days", "token_hash", "kind"})
        username = fields.get("user") or ctx.actor.name
        user = user_by_name(ctx, str(username), "user")
        days = fields.get("expires_days")
        if days is not None and (not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS):
            raise Invalid(f"expires_days {days!r} is out of range", field="expires_days",
                          fix=f"use 1 to {MAX_TOKEN_DAYS} days, or null for no expiry")
        expires = None if days is None else _iso(ctx.now + timedelta(days=days))
        token_hash = fields.get("token_hash")
        if not isinstance(token_hash, str) or len(token_hash) != 64:
            raise Invalid("token_hash is missing", field="token_hash",
                          fix="make tokens with credentials.new_token()")
        return {"user": user.username, "name": text_field(fields, "name", max_length=128)
                or "api", "expires_at": expires, "kind": fields.get("kind") or "api",
                "token_hash": token_hash}

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> ApiToken:
        expires = fields["expires_at"]
        row = ApiToken(tenant_id=ctx.tenant_id, user_id=user_by_name(ctx, fields["user"],
                                                                     "user").id,
                       name=fields["name"], kind=fields["kind"], token_hash=fields["token_hash"],
                       expires_at=None if expires is None else datetime.fromisoformat(expires))
        ctx.session.add(row)
        return row

    def delete(self, ctx: ApplyContext, row: ApiToken) -> dict[str, Any] | None:
        if row.revoked_at is None:
            row.revoked_at = ctx.now
            ctx.session.flush()
        return self.snapshot(ctx, row)


for _kind in (RoleAssignmentKind(), PermissionKind(), VendorGrantKind(), ApiTokenKind()):
    register(_kind)
