"""Coverage: the responsibilities nobody holds, reported like failing health checks.

Built-in checks: an owner role with no holder (no Emergency Contact, ...), a site with no
Emergency Contact, a mailbox nobody is responsible for checking (an extension without a
user, a group mailbox without a checker), a vendor grant past its end that nobody closed,
and an open change request that nobody is able to approve. Other features add their own
checks with ``register_check`` (SLAs will: "no SLA defined"); the modules of features
above org/ that do are listed in ``PLUGIN_CHECKS`` and imported by name (org/ never depends
on them): media/'s check of mailboxes whose responsible people are nobody.

A "problem" makes the report fail; a "warning" does not. This module only reads.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.org.audit import iso
from frontdesk.org.model import ChangeRequest, RoleAssignment, Site, UserGroup, VendorGrant
from frontdesk.org.roles import DOMAIN_OWNERS, OWNER_ROLES, Domain, Role
from frontdesk.store.models import Extension, Tenant

Severity = Literal["problem", "warning"]

#: What goes undone when nobody holds an owner role (the message names it).
RESPONSIBILITIES: dict[Role, str] = {
    Role.DECISION_MAKER: "nobody owns vendor choice and strategy or reads the reports",
    Role.PHONE_MANAGER: "nobody manages users, groups and which features each group gets",
    Role.TECHNICAL_CONTACT: "nobody owns trunks, network, security and backups, or approves "
                            "infrastructure change requests",
    Role.EMERGENCY_CONTACT: "nobody switches continuity plans or receives emergency-call "
                            "notifications",
    Role.VENDOR: "no vendor is on record for maintenance, updates and support",
}


@dataclass(frozen=True, slots=True)
class CoverageProblem:
    """One uncovered responsibility: what, about which thing, and how to fix it."""

    check: str
    severity: Severity
    subject: str
    message: str
    fix: str


@dataclass(frozen=True, slots=True)
class CoverageReport:
    """Every finding for one tenant, and which checks ran."""

    tenant: str
    checks: tuple[str, ...]
    problems: tuple[CoverageProblem, ...]

    @property
    def ok(self) -> bool:
        """False when any finding is a problem (warnings alone pass)."""
        return all(p.severity != "problem" for p in self.problems)


Check = Callable[[Session, Tenant, datetime], Iterator[CoverageProblem]]
_CHECKS: dict[str, Check] = {}


#: Modules of features above org/ that register checks when imported.
PLUGIN_CHECKS = ("frontdesk.media.compliance",)


def _load_plugin_checks() -> None:
    for module in PLUGIN_CHECKS:
        if module not in sys.modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)


def register_check(name: str) -> Callable[[Check], Check]:
    """Decorator: run ``check`` in every coverage report under ``name``."""

    def add(check: Check) -> Check:
        _CHECKS[name] = check
        return check

    return add


def _holders(session: Session, tenant_id: int) -> dict[str, list[int | None]]:
    """role -> site ids of its assignments (None: tenant-wide)."""
    held: dict[str, list[int | None]] = {}
    for role, site_id in session.execute(select(RoleAssignment.role, RoleAssignment.site_id)
                                         .where(RoleAssignment.tenant_id == tenant_id)):
        held.setdefault(role, []).append(site_id)
    return held


@register_check("owner-roles")
def _owner_roles(session: Session, tenant: Tenant, now: datetime) -> Iterator[CoverageProblem]:
    held = _holders(session, tenant.id)
    for role in OWNER_ROLES:
        if role.value in held:
            continue
        yield CoverageProblem(
            "owner-roles", "warning" if role is Role.VENDOR else "problem", f"role {role.value}",
            f"nobody holds the {role.label} role in tenant {tenant.slug}: "
            f"{RESPONSIBILITIES[role]}",
            f"assign it: frontdesk role grant USER {role.value} --tenant {tenant.slug} "
            "(or POST /api/v1/role-assignments)")


@register_check("site-emergency-contact")
def _site_emergency(session: Session, tenant: Tenant, now: datetime) -> Iterator[CoverageProblem]:
    sites_covered = _holders(session, tenant.id).get(Role.EMERGENCY_CONTACT.value, [])
    if None in sites_covered:
        return
    for site in session.scalars(select(Site).where(Site.tenant_id == tenant.id)
                                .order_by(Site.slug)):
        if site.id not in sites_covered:
            yield CoverageProblem(
                "site-emergency-contact", "problem", f"site {site.slug}",
                f"site {site.slug!r} has no Emergency Contact",
                f"assign one for the tenant or the site: frontdesk role grant USER "
                f"emergency_contact --site {site.slug}")


@register_check("mailboxes")
def _mailboxes(session: Session, tenant: Tenant, now: datetime) -> Iterator[CoverageProblem]:
    for number in session.scalars(select(Extension.number).where(
            Extension.tenant_id == tenant.id, Extension.user_id.is_(None))
            .order_by(Extension.number)):
        yield CoverageProblem(
            "mailboxes", "problem", f"extension {number}",
            f"the mailbox of extension {number} has nobody responsible for checking it "
            "(the extension has no user)",
            f"give extension {number} a user (PATCH /api/v1/extensions/{number} "
            '{"user": ...}) or delete it')
    for name in session.scalars(select(UserGroup.name).where(
            UserGroup.tenant_id == tenant.id, UserGroup.has_mailbox.is_(True),
            UserGroup.mailbox_checker_id.is_(None)).order_by(UserGroup.name)):
        yield CoverageProblem(
            "mailboxes", "problem", f"group {name}",
            f"the mailbox of group {name!r} has nobody responsible for checking it",
            f"set its mailbox_checker (PATCH /api/v1/groups/{name})")


@register_check("vendor-grants")
def _vendor_grants(session: Session, tenant: Tenant, now: datetime) -> Iterator[CoverageProblem]:
    for grant in session.scalars(select(VendorGrant).where(
            VendorGrant.tenant_id == tenant.id, VendorGrant.revoked_at.is_(None),
            VendorGrant.ends_at <= now).order_by(VendorGrant.id)):
        yield CoverageProblem(
            "vendor-grants", "problem", f"vendor grant {grant.id}",
            f"vendor grant {grant.id} ended at {iso(grant.ends_at)} and is still open "
            "(it no longer works)",
            f"close it: DELETE /api/v1/vendor-grants/{grant.id}, or grant anew if the work "
            "continues")


@register_check("change-request-approvers")
def _approvers(session: Session, tenant: Tenant, now: datetime) -> Iterator[CoverageProblem]:
    held = _holders(session, tenant.id)
    for request in session.scalars(select(ChangeRequest).where(
            ChangeRequest.tenant_id == tenant.id, ChangeRequest.status == "open")
            .order_by(ChangeRequest.id)):
        for domain in request.domains:
            if domain in request.approvals:
                continue
            owners = DOMAIN_OWNERS[Domain(domain)]
            if not any(r.value in held for r in owners):
                titles = " or ".join(r.label for r in owners)
                yield CoverageProblem(
                    "change-request-approvers", "problem", f"change request {request.id}",
                    f"change request #{request.id} waits for the {domain} owner, and nobody "
                    f"holds {titles}",
                    f"assign {owners[0].value} to someone who can decide it")


def report(session: Session, tenant: Tenant, now: datetime) -> CoverageReport:
    """Run every registered check for ``tenant`` at ``now``."""
    _load_plugin_checks()
    problems: list[CoverageProblem] = []
    for check in _CHECKS.values():
        problems.extend(check(session, tenant, now))
    return CoverageReport(tenant.slug, tuple(_CHECKS), tuple(problems))
