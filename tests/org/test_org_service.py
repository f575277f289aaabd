"""The one change path: direct changes, cross-domain change requests and their approval by
the Technical Contact, rejection, stale requests, versions and rollback, site-level roles,
permission overrides, events to informed stakeholders. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from frontdesk.org import versions
from frontdesk.org.errors import Conflict, Invalid, NotAllowed
from frontdesk.org.events import (
    ChangeApplied,
    ChangeRequestDecided,
    ChangeRequested,
    EventBus,
    Recorder,
    StakeholderInformed,
)
from frontdesk.org.model import ChangeRequest
from frontdesk.org.roles import Role
from frontdesk.org.service import Change, apply_change, decide, rollback
from frontdesk.store.db import Database
from frontdesk.store.models import Tenant, utcnow
from orgkit import audit_count, dump, make_world


@pytest.fixture
def world(db: Database):  # type: ignore[no-untyped-def]
    w = make_world(db, roles=False)
    w.add_user("pm", Role.PHONE_MANAGER)
    w.add_user("tc", Role.TECHNICAL_CONTACT)
    w.add_user("ccm", Role.CONTACT_CENTER_MANAGER)
    w.add_user("om", Role.OFFICE_MANAGER)
    w.setup(Change("extension", "create", "101", {"display_name": "Front desk",
                                                  "sip_password": "secret99"}))
    return w


def _apply(world, who: str, change: Change):  # type: ignore[no-untyped-def]
    with world.db.session() as session:
        return apply_change(session, world.actor(who), "api", change)


def test_a_change_in_ones_own_domain_applies_with_one_audit_row_and_a_version(world) -> None:  # type: ignore[no-untyped-def]
    before = audit_count(world.db)
    outcome = _apply(world, "pm", Change("extension", "update", "101", {"ring_timeout": 15}))
    assert outcome.status == "applied"
    assert outcome.after is not None and outcome.after["ring_timeout"] == 15
    assert audit_count(world.db) == before + 1
    with world.db.session() as session:
        history = versions.history(session, world.tenant_id, "extension", "101")
    assert [v.version for v in history] == [1, 2]
    assert history[-1].actor == "pm"


def test_a_denied_change_writes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    state = dump(world.db)
    with pytest.raises(NotAllowed, match="om may not update extension 101"):
        _apply(world, "om", Change("extension", "update", "101", {"ring_timeout": 15}))
    assert dump(world.db) == state


def test_cross_domain_change_waits_for_the_technical_contact(world) -> None:  # type: ignore[no-untyped-def]
    """The business owner changes security settings: a change request, applied only after
    the Technical Contact approves."""
    outcome = _apply(world, "pm", Change("tenant", "update", "acme",
                                         {"digest_algorithms": ["SHA-256", "MD5"]},
                                         reason="new phones do SHA-256"))
    assert outcome.status == "requested"
    request = outcome.change_request
    assert request is not None and request.domains == ["infrastructure"]
    assert request.diff == [{"field": "digest_algorithms", "before": ["MD5"],
                             "after": ["SHA-256", "MD5"]}]
    assert isinstance(outcome.events[0], ChangeRequested)
    assert outcome.events[0].approver_user_ids == (world.user_ids["tc"],)
    with world.db.session() as session:
        assert session.get(Tenant, world.tenant_id).setting("digest_algorithms") == ["MD5"]  # type: ignore[union-attr]
    for who in ("pm", "ccm"):  # the requester, and another business owner, cannot approve
        with pytest.raises(NotAllowed), world.db.session() as session:
            decide(session, world.actor(who), "api", request.id, approve=True)
    with world.db.session() as session:
        done = decide(session, world.actor("tc"), "api", request.id, approve=True,
                      comment="checked the phones")
    assert done.status == "applied"
    assert any(isinstance(e, ChangeRequestDecided) and e.applied for e in done.events)
    with world.db.session() as session:
        assert session.get(Tenant, world.tenant_id).setting("digest_algorithms") == [  # type: ignore[union-attr]
            "SHA-256", "MD5"]
        assert session.get(ChangeRequest, request.id).status == "applied"  # type: ignore[union-attr]


def test_a_change_touching_both_domains_is_one_request(world) -> None:  # type: ignore[no-untyped-def]
    outcome = _apply(world, "pm", Change("tenant", "update", "acme",
                                         {"ring_timeout": 20, "allow_unauthenticated_loopback": True}))
    assert outcome.status == "requested"
    assert outcome.change_request.domains == ["infrastructure"]  # type: ignore[union-attr]
    with world.db.session() as session:
        assert session.get(Tenant, world.tenant_id).setting("ring_timeout") == 30  # type: ignore[union-attr]


def test_infrastructure_owner_changing_business_settings_needs_the_business_owner(world) -> None:  # type: ignore[no-untyped-def]
    outcome = _apply(world, "tc", Change("tenant", "update", "acme", {"ring_timeout": 20}))
    assert outcome.status == "requested" and outcome.change_request.domains == ["business"]  # type: ignore[union-attr]
    with world.db.session() as session:
        done = decide(session, world.actor("ccm"), "api", outcome.change_request.id,  # type: ignore[union-attr]
                      approve=True)
    assert done.status == "applied" and done.after["ring_timeout"] == 20  # type: ignore[index]


def test_a_rejection_needs_a_comment_and_applies_nothing(world) -> None:  # type: ignore[no-untyped-def]
    outcome = _apply(world, "pm", Change("group", "create", "sales",
                                         {"display_name": "Sales",
                                          "features": ["international_calls"]}))
    assert outcome.status == "requested"
    request_id = outcome.change_request.id  # type: ignore[union-attr]
    with pytest.raises(Invalid, match="comment"), world.db.session() as session:
        decide(session, world.actor("tc"), "api", request_id, approve=False)
    with world.db.session() as session:
        done = decide(session, world.actor("tc"), "api", request_id, approve=False,
                      comment="no calls abroad from sales")
    assert done.status == "rejected"
    with pytest.raises(Conflict, match="already rejected"), world.db.session() as session:
        decide(session, world.actor("tc"), "api", request_id, approve=True)
    with world.db.session() as session:
        from frontdesk.org.model import UserGroup

        assert session.scalar(select(UserGroup)) is None


def test_an_approval_of_a_stale_request_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    outcome = _apply(world, "pm", Change("tenant", "update", "acme",
                                         {"digest_algorithms": ["SHA-256"]}))
    world.setup(Change("tenant", "update", "acme", {"digest_algorithms": ["SHA-256", "MD5"]}))
    with pytest.raises(Conflict, match="changed after change request"), \
            world.db.session() as session:
        decide(session, world.actor("tc"), "api", outcome.change_request.id, approve=True)  # type: ignore[union-attr]


def test_rollback_restores_an_earlier_version_through_the_change_path(world) -> None:  # type: ignore[no-untyped-def]
    _apply(world, "pm", Change("extension", "update", "101", {"ring_timeout": 15,
                                                              "display_name": "Reception"}))
    with world.db.session() as session:
        outcome = rollback(session, world.actor("pm"), "api", "extension", "101", 1,
                           reason="wrong desk")
    assert outcome.status == "applied"
    assert outcome.after["display_name"] == "Front desk"  # type: ignore[index]
    assert outcome.after["ring_timeout"] is None  # type: ignore[index]
    with pytest.raises(NotAllowed), world.db.session() as session:
        rollback(session, world.actor("om"), "api", "extension", "101", 2)


def test_rollback_of_a_deleted_resource_recreates_it(world) -> None:  # type: ignore[no-untyped-def]
    world.setup(Change("group", "create", "service", {"display_name": "Service",
                                                      "members": ["pm"]}),
                Change("group", "delete", "service"))
    with world.db.session() as session:
        outcome = rollback(session, world.admin, "cli", "group", "service", 1)
    assert outcome.status == "applied" and outcome.after["members"] == ["pm"]  # type: ignore[index]


def test_site_level_roles_count_only_at_their_site(world) -> None:  # type: ignore[no-untyped-def]
    world.setup(Change("site", "create", "north", {"name": "North office"}),
                Change("site", "create", "south", {"name": "South office"}),
                Change("group", "create", "north-desk", {"display_name": "N", "site": "north"}),
                Change("group", "create", "south-desk", {"display_name": "S", "site": "south"}))
    world.add_user("npm", Role.PHONE_MANAGER, site="north")
    outcome = _apply(world, "npm", Change("group", "update", "north-desk", {"display_name": "N2"}))
    assert outcome.status == "applied"
    with pytest.raises(NotAllowed):
        _apply(world, "npm", Change("group", "update", "south-desk", {"display_name": "S2"}))
    with pytest.raises(NotAllowed):  # moving it away needs the tenant-wide role
        _apply(world, "npm", Change("group", "update", "north-desk", {"site": "south"}))


def test_a_tenant_can_adjust_the_matrix(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotAllowed):
        _apply(world, "om", Change("extension", "update", "101", {"ring_timeout": 15}))
    _apply(world, "pm", Change("permission", "update", "office_manager/extension.update",
                               {"allowed": True}))
    outcome = _apply(world, "om", Change("extension", "update", "101", {"ring_timeout": 15}))
    # the office manager owns no domain: even a permitted change goes to the business owner
    assert outcome.status == "requested" and outcome.change_request.domains == ["business"]  # type: ignore[union-attr]
    _apply(world, "pm", Change("permission", "update", "office_manager/extension.update",
                               {"allowed": None}))
    with pytest.raises(NotAllowed):
        _apply(world, "om", Change("extension", "update", "101", {"ring_timeout": 16}))


def test_informed_stakeholders_are_told_through_the_bus(world) -> None:  # type: ignore[no-untyped-def]
    """RACI "informed" for extensions: Phone Manager and office manager (not the actor)."""
    bus, informed, everything = EventBus(), Recorder(), Recorder()
    bus.subscribe(informed, prefix="org.informed.")
    bus.subscribe(everything)
    world.add_user("pm2", Role.PHONE_MANAGER)
    done = _apply(world, "pm", Change("extension", "update", "101", {"max_contacts": 3}))
    bus.publish(done.events)
    told = [e for e in informed.events if isinstance(e, StakeholderInformed)]
    assert {e.user_id for e in told} == {world.user_ids["om"], world.user_ids["pm2"]}
    assert all(e.routing_key == f"org.informed.user.{e.user_id}" for e in told)
    assert "max_contacts: 5 -> 3" in told[0].summary
    applied = [e for e in everything.events if isinstance(e, ChangeApplied)]
    assert applied[-1].required_permission == "extension.read"
    assert applied[-1].routing_key == "org.extension.updated"


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus, got = EventBus(), Recorder()

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(got)
    bus.publish([ChangeApplied(1, "extension", "101", "update", 2, "pm", "api", 7)])
    assert len(got.events) == 1


def test_unchanged_update_writes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    state = dump(world.db)
    outcome = _apply(world, "pm", Change("extension", "update", "101",
                                         {"display_name": "Front desk"}))
    assert outcome.status == "unchanged"
    assert dump(world.db) == state


def test_errors_name_the_field_and_the_fix(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid) as caught:
        _apply(world, "pm", Change("extension", "create", "102", {"display_name": "X",
                                                                  "user": "nobody"}))
    assert caught.value.field == "user" and "nobody" in caught.value.message
    assert caught.value.fix
    with pytest.raises(Invalid) as caught:
        _apply(world, "pm", Change("extension", "update", "101", {"ring_tmeout": 5}))
    assert caught.value.field == "ring_tmeout" and "ring_timeout" in caught.value.fix


def test_only_the_hosting_tenants_people_create_tenants(world) -> None:  # type: ignore[no-untyped-def]
    world.add_user("boss", Role.ADMINISTRATOR)
    outcome = _apply(world, "boss", Change("tenant", "create", "beta",
                                           {"name": "Beta", "sip_domain": "beta.test"}))
    assert outcome.status == "applied"
    with world.db.session() as session:
        beta = session.scalar(select(Tenant).where(Tenant.slug == "beta"))
        assert beta is not None
    # the new tenant's chain starts with its own creation
    assert audit_count(world.db, beta.id) == 1
    with pytest.raises(NotAllowed):
        _apply(world, "pm", Change("tenant", "create", "gamma",
                                   {"name": "G", "sip_domain": "gamma.test"}))


def test_changes_use_the_clock_they_are_given(world) -> None:  # type: ignore[no-untyped-def]
    later = utcnow() + timedelta(days=3)
    with world.db.session() as session:
        outcome = apply_change(session, world.actor("pm"), "job",
                               Change("extension", "update", "101", {"ring_timeout": 9}),
                               now=later)
        assert versions.latest(session, world.tenant_id, "extension", "101").at == later  # type: ignore[union-attr]
    assert outcome.status == "applied"


def test_the_last_administrator_cannot_be_removed(world) -> None:  # type: ignore[no-untyped-def]
    world.add_user("boss", Role.ADMINISTRATOR)
    with pytest.raises(Conflict, match="last administrator"):
        world.setup(Change("role_assignment", "delete", "boss:administrator"))
    with pytest.raises(Conflict, match="last administrator"):
        _apply(world, "pm", Change("user", "delete", "boss"))
    world.add_user("boss2", Role.ADMINISTRATOR)
    assert _apply(world, "pm", Change("user", "delete", "boss")).status == "applied"
