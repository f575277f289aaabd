"""Tables of the ownership model: sites, groups, role assignments, permission overrides,
vendor grants, change requests, resource versions, the hash-chained audit log, API tokens.

Tenants, users, extensions and SIP credentials live in ``frontdesk.store.models`` and are
reused here, not duplicated. Audit rows and versions keep plain ``tenant_id`` integers
without foreign keys: history must outlive the rows it describes. Before/after snapshots
in the audit log are canonical JSON *text* so the hash chain recomputes byte for byte on
SQLite and PostgreSQL alike.

This module only describes tables; it must never query, enforce permissions or write audit
entries (``service.py`` and ``audit.py`` do). Changing a table needs a new Alembic revision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.store.models import Base, UtcDateTime, json_type, utcnow

CHANGE_REQUEST_STATUSES = ("open", "applied", "rejected")
CHANNELS = ("api", "cli", "web", "job")
TOKEN_KINDS = ("api", "session")


def _tenant_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))


class Site(Base):
    """A place where a tenant works (an office, a branch); roles may be held per site."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = _tenant_fk()
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    address: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class UserGroup(Base):
    """A group of users (ring group, team) with the features its members get and, when it
    has a shared mailbox, the person responsible for checking it."""

    __tablename__ = "user_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = _tenant_fk()
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(255))
    features: Mapped[list[str]] = mapped_column(json_type(), default=list)
    has_mailbox: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    mailbox_checker_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GroupMember(Base):
    """Membership of a user in a group."""

    __tablename__ = "user_group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RoleAssignment(Base):
    """A person holds a role in a tenant, or only at one site when ``site_id`` is set."""

    __tablename__ = "role_assignments"
    __table_args__ = (Index("ix_role_assignments_tenant_id_role", "tenant_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = _tenant_fk()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PermissionOverride(Base):
    """A tenant's adjustment of the default matrix: ``role`` may (or may not) ``permission``."""

    __tablename__ = "permission_overrides"
    __table_args__ = (UniqueConstraint("tenant_id", "role", "permission"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = _tenant_fk()
    role: Mapped[str] = mapped_column(String(32))
    permission: Mapped[str] = mapped_column(String(64))
    allowed: Mapped[bool] = mapped_column(Boolean)


class VendorGrant(Base):
    """Time-boxed, scoped access for a Vendor, granted by the Technical Contact.

    Effective while ``starts_at <= now < ends_at`` and not revoked; it expires by itself.
    """

    __tablename__ = "vendor_grants"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = _tenant_fk()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    permissions: Mapped[list[str]] = mapped_column(json_type())
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    granted_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ChangeRequest(Base):
    """A change that crosses domains, waiting for the other domain's owner.

    ``fields`` is what would be applied; ``diff`` the readable before/after per field;
    ``domains`` the domains whose owners must approve; ``approvals`` who approved which.
    """

    __tablename__ = "change_requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'applied', 'rejected')", name="status_known"
        ),
        Index("ix_change_requests_tenant_id_status", "tenant_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = _tenant_fk()
    status: Mapped[str] = mapped_column(String(16), default="open")
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_key: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    fields: Mapped[dict[str, Any]] = mapped_column(json_type())
    diff: Mapped[list[Any]] = mapped_column(json_type())
    domains: Mapped[list[str]] = mapped_column(json_type())
    approvals: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    base_version: Mapped[int | None] = mapped_column(Integer)
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    requested_by: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decision_comment: Mapped[str | None] = mapped_column(Text)


class ResourceVersion(Base):
    """One version of one resource: its snapshot after a change (None: deleted)."""

    __tablename__ = "resource_versions"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "resource_type", "resource_key", "version",
            name="uq_resource_versions_version",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    actor: Mapped[str] = mapped_column(String(255))
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    change_request_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AuditEntry(Base):
    """One audited event; ``hash = sha256(prev_hash + canonical JSON of the row)``.

    Each tenant has its own chain, numbered by ``seq`` from 1; the unique constraint on
    (tenant_id, seq) makes a forked chain impossible.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_audit_log_tenant_id_resource", "tenant_id", "resource_type", "resource_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(255))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_roles: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(16))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_key: Mapped[str] = mapped_column(String(255))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    change_request_id: Mapped[int | None] = mapped_column(Integer)
    vendor_grant_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token for the REST API; only the SHA-256 of the secret is stored.

    ``kind`` is "api" (made on purpose, long-lived) or "session" (from a password login).
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = _tenant_fk()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8), default="api")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
