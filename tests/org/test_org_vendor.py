"""Vendor access: granted by the Technical Contact for a limited time and scope, it stops
working by itself when it ends, every change made with it carries the grant in the audit
log, and it can never carry permissions that would let the vendor extend itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from frontdesk.org.errors import Invalid, NotAllowed
from frontdesk.org.model import AuditEntry
from frontdesk.org.roles import Role
from frontdesk.org.service import Change, apply_change
from frontdesk.store.db import Database
from frontdesk.store.models import utcnow
from orgkit import make_world

START = utcnow().replace(microsecond=0)


@pytest.fixture
def world(db: Database):  # type: ignore[no-untyped-def]
    w = make_world(db, roles=False)
    w.add_user("tc", Role.TECHNICAL_CONTACT)
    w.add_user("pm", Role.PHONE_MANAGER)
    w.add_user("acme-support", Role.VENDOR)
    return w


def _grant(world, who: str = "tc", hours: int = 2, permissions=("tenant.update",)):  # type: ignore[no-untyped-def]
    with world.db.session() as session:
        return apply_change(session, world.actor(who), "api", Change(
            "vendor_grant", "create", None,
            {"user": "acme-support", "permissions": list(permissions),
             "starts": START.isoformat(), "ends": (START + timedelta(hours=hours)).isoformat(),
             "reason": "firmware upgrade, ticket 4711"}), now=START)


def _vendor_changes(world, at):  # type: ignore[no-untyped-def]
    with world.db.session() as session:
        return apply_change(session, world.actor("acme-support"), "api",
                            Change("tenant", "update", "acme",
                                   {"digest_algorithms": ["SHA-256", "MD5"]}), now=at)


def test_a_grant_works_within_its_time_and_is_audited(world) -> None:  # type: ignore[no-untyped-def]
    grant = _grant(world)
    assert grant.status == "applied"
    with pytest.raises(NotAllowed):  # not before it starts
        _vendor_changes(world, START - timedelta(minutes=1))
    outcome = _vendor_changes(world, START + timedelta(minutes=30))
    assert outcome.status == "applied"  # infrastructure, pre-approved by the TC's grant
    with world.db.session() as session:
        row = session.scalar(select(AuditEntry).where(AuditEntry.seq == outcome.audit_seq,
                                                      AuditEntry.tenant_id == world.tenant_id))
        assert row is not None and row.vendor_grant_id == int(grant.resource_key)
        assert row.actor == "acme-support"


def test_a_grant_expires_by_itself(world) -> None:  # type: ignore[no-untyped-def]
    _grant(world, hours=1)
    with pytest.raises(NotAllowed, match=r"needs permission tenant\.update"):
        _vendor_changes(world, START + timedelta(hours=1))


def test_a_revoked_grant_stops_working(world) -> None:  # type: ignore[no-untyped-def]
    grant = _grant(world)
    with world.db.session() as session:
        apply_change(session, world.actor("tc"), "api",
                     Change("vendor_grant", "delete", grant.resource_key), now=START)
    with pytest.raises(NotAllowed):
        _vendor_changes(world, START + timedelta(minutes=5))


def test_a_vendors_business_change_still_needs_the_business_owner(world) -> None:  # type: ignore[no-untyped-def]
    _grant(world)
    with world.db.session() as session:
        outcome = apply_change(session, world.actor("acme-support"), "api",
                               Change("tenant", "update", "acme", {"ring_timeout": 25}),
                               now=START + timedelta(minutes=1))
    assert outcome.status == "requested"
    assert outcome.change_request.domains == ["business"]  # type: ignore[union-attr]


def test_only_the_technical_contact_grants(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotAllowed, match=r"vendor_grant\.create"):
        _grant(world, who="pm")


@pytest.mark.parametrize("permissions", [("role_assignment.create",), ("vendor_grant.create",),
                                         ("permission.update",), ("no.such",)])
def test_a_grant_cannot_extend_the_vendor(world, permissions) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid) as caught:
        _grant(world, permissions=permissions)
    assert caught.value.field == "permissions"


def test_a_grant_is_time_boxed(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid, match="at most 30 days") as caught:
        _grant(world, hours=31 * 24)
    assert caught.value.field == "ends"


def test_only_vendors_get_grants(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid, match="does not hold the Vendor role"), \
            world.db.session() as session:
        apply_change(session, world.actor("tc"), "api", Change(
            "vendor_grant", "create", None,
            {"user": "pm", "permissions": ["tenant.read"],
             "ends": (utcnow() + timedelta(hours=1)).isoformat(), "reason": "x"}))
