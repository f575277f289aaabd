"""Who is acting, and what they may do right now: ``Actor`` and ``resolve_access``.

An ``Actor`` is identity only — a user, the built-in local administrator (someone with
shell access to the server, recorded as such), or a background job acting with named
roles. It is passed explicitly to every change; nothing here reads a request context.
What an actor may do is computed fresh from the database for each change
(``resolve_access``): role assignments (tenant-wide, plus those at the resource's site),
the default matrix adjusted by the tenant's overrides, and vendor grants active at
``now`` — so an expired grant stops working by itself.

This module must never change anything: it only reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from frontdesk.org.model import PermissionOverride, RoleAssignment, VendorGrant
from frontdesk.org.roles import DEFAULT_PERMISSIONS, DOMAIN_OWNERS, PERMISSIONS, Domain, Role
from frontdesk.store.models import User


class ActorKind(StrEnum):
    """What sort of actor made a change (recorded in every audit row)."""

    USER = "user"
    LOCAL_ADMIN = "local-admin"
    JOB = "job"


@dataclass(frozen=True, slots=True)
class Actor:
    """The acting party, passed explicitly into ``service.apply_change``.

    ``tenant_id`` is the tenant acted in (None only for the local administrator creating
    tenants). ``job_roles`` are the roles a background job acts with.
    """

    tenant_id: int | None
    name: str
    kind: ActorKind = ActorKind.USER
    user_id: int | None = None
    job_roles: frozenset[Role] = frozenset()

    @classmethod
    def for_user(cls, user: User) -> Actor:
        """The actor for a signed-in person."""
        return cls(tenant_id=user.tenant_id, name=user.username, user_id=user.id)

    @classmethod
    def local_admin(cls, tenant_id: int | None) -> Actor:
        """The built-in local administrator: whoever runs the CLI on the server itself."""
        return cls(tenant_id=tenant_id, name="local administrator", kind=ActorKind.LOCAL_ADMIN)

    @classmethod
    def job(cls, tenant_id: int, name: str, roles: Iterable[Role]) -> Actor:
        """A background job acting in ``tenant_id`` with ``roles``."""
        return cls(tenant_id=tenant_id, name=f"job {name}", kind=ActorKind.JOB,
                   job_roles=frozenset(roles))

    def describe(self) -> str:
        """How the actor appears in messages and the audit log."""
        return self.name


@dataclass(frozen=True, slots=True)
class Access:
    """What an actor may do in one tenant (and at one site) at one moment."""

    roles: frozenset[Role]
    permissions: frozenset[str]
    owned_domains: frozenset[Domain]
    #: permission -> id of the active vendor grant that provides it (when no role does)
    granted: Mapping[str, int] = field(default_factory=dict)
    #: True only for the local administrator: every permission, listed or not.
    everything: bool = False

    def allows(self, permission: str) -> bool:
        return self.everything or permission in self.permissions or permission in self.granted

    def grant_for(self, permission: str) -> int | None:
        """The vendor grant a permission comes from, or None when a role provides it."""
        return None if permission in self.permissions else self.granted.get(permission)

    def domains_for(self, permission: str) -> frozenset[Domain]:
        """Domains this actor may change directly when using ``permission``: the owned ones,
        plus infrastructure for vendor-grant permissions (the Technical Contact, who owns
        infrastructure, approved them by granting)."""
        if self.grant_for(permission) is not None:
            return self.owned_domains | {Domain.INFRASTRUCTURE}
        return self.owned_domains


ALL_ACCESS = Access(
    roles=frozenset({Role.ADMINISTRATOR}),
    permissions=PERMISSIONS,
    owned_domains=frozenset(Domain),
    everything=True,
)


def roles_of(
    session: Session, tenant_id: int, user_id: int, site_id: int | None = None
) -> frozenset[Role]:
    """The roles ``user_id`` holds tenant-wide, plus those held at ``site_id``."""
    scope: ColumnElement[bool] = RoleAssignment.site_id.is_(None)
    if site_id is not None:
        scope = or_(scope, RoleAssignment.site_id == site_id)
    names = session.scalars(
        select(RoleAssignment.role).where(
            RoleAssignment.tenant_id == tenant_id, RoleAssignment.user_id == user_id, scope
        )
    )
    return frozenset(Role(n) for n in names if n in Role.__members__.values())


def permission_matrix(session: Session, tenant_id: int) -> dict[Role, frozenset[str]]:
    """The default matrix with the tenant's overrides applied."""
    matrix = {role: set(perms) for role, perms in DEFAULT_PERMISSIONS.items()}
    for override in session.scalars(
        select(PermissionOverride).where(PermissionOverride.tenant_id == tenant_id)
    ):
        if override.role not in Role.__members__.values() or override.role == Role.ADMINISTRATOR:
            continue
        perms = matrix[Role(override.role)]
        if override.allowed:
            perms.add(override.permission)
        else:
            perms.discard(override.permission)
    return {role: frozenset(perms) for role, perms in matrix.items()}


def active_grants(
    session: Session, tenant_id: int, user_id: int, now: datetime
) -> list[VendorGrant]:
    """The user's vendor grants in force at ``now`` (started, not ended, not revoked)."""
    return list(
        session.scalars(
            select(VendorGrant)
            .where(
                VendorGrant.tenant_id == tenant_id,
                VendorGrant.user_id == user_id,
                VendorGrant.starts_at <= now,
                VendorGrant.ends_at > now,
                VendorGrant.revoked_at.is_(None),
            )
            .order_by(VendorGrant.id)
        )
    )


def owned_domains(roles: Iterable[Role]) -> frozenset[Domain]:
    """The domains whose owner roles are among ``roles``."""
    held = set(roles)
    return frozenset(d for d, owners in DOMAIN_OWNERS.items() if held.intersection(owners))


def resolve_access(
    session: Session, actor: Actor, tenant_id: int, site_id: int | None, now: datetime
) -> Access:
    """What ``actor`` may do in ``tenant_id`` (at ``site_id``) at ``now``."""
    if actor.kind is ActorKind.LOCAL_ADMIN:
        return ALL_ACCESS
    if actor.tenant_id != tenant_id:
        return Access(roles=frozenset(), permissions=frozenset(), owned_domains=frozenset())
    if actor.kind is ActorKind.JOB:
        roles = actor.job_roles
    elif actor.user_id is None:
        roles = frozenset()
    else:
        roles = roles_of(session, tenant_id, actor.user_id, site_id)
    matrix = permission_matrix(session, tenant_id)
    permissions = frozenset().union(*(matrix[r] for r in roles)) if roles else frozenset()
    granted: dict[str, int] = {}
    if actor.user_id is not None and Role.VENDOR in roles:
        for grant in active_grants(session, tenant_id, actor.user_id, now):
            for permission in grant.permissions:
                granted.setdefault(permission, grant.id)
    return Access(
        roles=roles,
        permissions=permissions,
        owned_domains=owned_domains(roles),
        granted=granted,
    )
