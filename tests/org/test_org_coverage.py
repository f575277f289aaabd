"""Coverage: responsibilities nobody holds are reported like failing health checks —
owner roles without a holder, sites without an Emergency Contact, mailboxes nobody checks,
vendor grants past their end, change requests nobody can approve."""

from __future__ import annotations

from datetime import timedelta

import pytest

from frontdesk.org import coverage
from frontdesk.org.roles import OWNER_ROLES
from frontdesk.org.service import Change, apply_change
from frontdesk.store.db import Database
from frontdesk.store.models import Tenant, utcnow
from orgkit import World, make_world


def _report(world: World, at=None) -> coverage.CoverageReport:  # type: ignore[no-untyped-def]
    with world.db.session() as session:
        tenant = session.get(Tenant, world.tenant_id)
        assert tenant is not None
        return coverage.report(session, tenant, at or utcnow())


def _subjects(report: coverage.CoverageReport) -> set[str]:
    return {p.subject for p in report.problems}


@pytest.fixture
def covered(db: Database) -> World:
    """A tenant where every owner role is held."""
    world = make_world(db, roles=False)
    for role in OWNER_ROLES:
        world.add_user(role.value, role)
    return world


def test_an_empty_tenant_fails_on_every_owner_role(db: Database) -> None:
    report = _report(make_world(db, roles=False))
    assert not report.ok
    assert _subjects(report) == {f"role {r.value}" for r in OWNER_ROLES}
    by_subject = {p.subject: p for p in report.problems}
    assert by_subject["role vendor"].severity == "warning"
    emergency = by_subject["role emergency_contact"]
    assert "Emergency Contact" in emergency.message and "role grant" in emergency.fix


def test_a_tenant_with_every_owner_passes(covered: World) -> None:
    report = _report(covered)
    assert report.ok and report.problems == ()
    assert "owner-roles" in report.checks and "mailboxes" in report.checks


def test_a_site_without_emergency_contact(covered: World) -> None:
    covered.setup(Change("role_assignment", "delete", "emergency_contact:emergency_contact"),
                  Change("site", "create", "north", {"name": "North"}),
                  Change("site", "create", "south", {"name": "South"}),
                  Change("role_assignment", "create", None,
                         {"user": "technical_contact", "role": "emergency_contact",
                          "site": "north"}))
    assert _subjects(_report(covered)) == {"site south"}


def test_mailboxes_nobody_checks(covered: World) -> None:
    covered.setup(Change("extension", "create", "104", {"display_name": "Spare"}),
                  Change("extension", "create", "105", {"display_name": "Owned",
                                                        "user": "phone_manager"}),
                  Change("group", "create", "service", {"display_name": "Service",
                                                        "has_mailbox": True}))
    report = _report(covered)
    assert _subjects(report) == {"extension 104", "group service"}
    covered.setup(Change("group", "update", "service", {"mailbox_checker": "phone_manager"}),
                  Change("extension", "update", "104", {"user": "phone_manager"}))
    assert _report(covered).ok


def test_a_vendor_grant_past_its_end(covered: World) -> None:
    with covered.db.session() as session:
        grant = apply_change(session, covered.actor("technical_contact"), "api", Change(
            "vendor_grant", "create", None,
            {"user": "vendor", "permissions": ["tenant.read"], "reason": "support",
             "ends": (utcnow() + timedelta(hours=1)).isoformat()}))
    assert _report(covered).ok
    later = _report(covered, utcnow() + timedelta(hours=2))
    assert _subjects(later) == {f"vendor grant {grant.resource_key}"}
    assert "DELETE /api/v1/vendor-grants/" in later.problems[0].fix


def test_a_change_request_nobody_can_approve(covered: World) -> None:
    with covered.db.session() as session:
        outcome = apply_change(session, covered.actor("phone_manager"), "api", Change(
            "tenant", "update", "acme", {"allow_unauthenticated_loopback": True}))
    assert outcome.status == "requested"
    assert _report(covered).ok  # the Technical Contact can decide it
    covered.setup(Change("role_assignment", "delete", "technical_contact:technical_contact"))
    subjects = _subjects(_report(covered))
    assert f"change request {outcome.change_request.id}" in subjects  # type: ignore[union-attr]
    assert "role technical_contact" in subjects


def test_other_features_can_add_checks(covered: World) -> None:
    @coverage.register_check("test-sla")
    def _no_sla(session, tenant, now):  # type: ignore[no-untyped-def]
        yield coverage.CoverageProblem("test-sla", "problem", "sla", "no SLA defined",
                                       "define one")

    try:
        assert _subjects(_report(covered)) == {"sla"}
    finally:
        coverage._CHECKS.pop("test-sla")
    assert _report(covered).ok

