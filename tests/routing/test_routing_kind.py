"""Call flows through org/'s one change path (``routing/kind.py``), on SQLite and PostgreSQL:
drafts, publishing, discarding and rolling back are permission-checked, versioned and audited
(one hash-chained row each); publishing a flow that sends calls to a new outside number is
a change request that only the Technical Contact's approval applies."""

from __future__ import annotations

from typing import Any

import pytest

from frontdesk.org import audit, service
from frontdesk.org.errors import Conflict, NotAllowed, NotFound
from frontdesk.org.service import ChangeOutcome, apply_change
from frontdesk.routing import versions
from frontdesk.routing.kind import FlowChanges, FlowRejected, outside_numbers
from frontdesk.routing.model import FlowDocument
from frontdesk.store.db import Database
from orgkit import World, audit_count, dump, make_world

CCM, TC, TECH = "contact_center_manager", "technical_contact", "technician"
OUTSIDE = "+15551230000"


def night(message: str = "closed", transfer: str | None = None) -> FlowDocument:
    """A small valid flow: play nothing, hang up — or transfer to ``transfer``."""
    end: dict[str, Any] = (
        {"type": "transfer", "number": transfer} if transfer else {"type": "hangup", "message": "bye"}
    )
    return FlowDocument.model_validate({
        "name": "night", "messages": {"bye": message},
        "nodes": {"start": {"type": "start", "next": "end"}, "end": end}})


@pytest.fixture
def world(db: Database) -> World:
    return make_world(db)


def run(world: World, who: str, *changes: Any) -> ChangeOutcome:
    with world.db.session() as session:
        outcomes = [apply_change(session, world.actor(who), "api", c) for c in changes]
    return outcomes[-1]


def published(world: World, name: str = "night") -> dict[str, Any] | None:
    with world.db.session() as session:
        row = versions.published_version(session, world.tenant_id, name)
        return None if row is None else {"version": row.version, "by": row.published_by,
                                         "note": row.note, "document": row.document}


def test_a_business_owner_drafts_publishes_and_rolls_back_each_audited_once(
        world: World) -> None:
    changes = FlowChanges("night", "new night message")
    start = audit_count(world.db)
    drafted = run(world, CCM, changes.draft(night("we are closed")))
    assert drafted.status == "applied" and drafted.after is not None
    assert drafted.after["draft_version"] == 1 and drafted.after["published"] is None
    first = run(world, CCM, changes.publish())
    assert first.status == "applied" and first.after is not None
    assert first.after["published_version"] == 1 and first.after["draft"] is None
    run(world, CCM, changes.draft(night("back at eight")))
    run(world, CCM, changes.publish())
    assert published(world) == {"version": 2, "by": CCM, "note": None,
                                "document": night("back at eight").to_json()}
    rolled = run(world, CCM, changes.rollback())
    assert rolled.after is not None and rolled.after["published_note"] == "rollback to version 1"
    current = published(world)
    assert current is not None and current["version"] == 3
    assert current["document"] == night("we are closed").to_json()
    assert audit_count(world.db) == start + 5
    with world.db.session() as session:
        rows = audit.entries(session, world.tenant_id, resource_type="flow")
        assert [r.action for r in rows] == ["draft", "publish", "draft", "publish", "rollback"]
        assert all(r.actor == CCM and r.channel == "api" for r in rows)
        assert audit.verify(session, world.tenant_id).ok


def test_discarding_a_draft_keeps_what_calls_run(world: World) -> None:
    changes = FlowChanges("night")
    run(world, CCM, changes.draft(night("one")), changes.publish(), changes.draft(night("two")))
    outcome = run(world, CCM, changes.discard())
    assert outcome.after is not None and outcome.after["draft"] is None
    assert published(world) is not None
    with pytest.raises(Conflict, match='flow "night" has no draft to discard'):
        run(world, CCM, changes.discard())


@pytest.mark.parametrize("who", [TECH, "agent", "office_manager", TC, "vendor"])
def test_roles_without_flow_permissions_change_nothing(world: World, who: str) -> None:
    world.setup(FlowChanges("night").draft(night()))
    before = dump(world.db)
    for change in (FlowChanges("night").draft(night("mine")), FlowChanges("night").publish()):
        with pytest.raises(NotAllowed, match=r"may not (draft|publish) flow night \(needs "
                                             r"permission flow\.(draft|publish)\)"):
            run(world, who, change)
    assert dump(world.db) == before


def test_publishing_a_transfer_to_a_new_outside_number_waits_for_the_technical_contact(
        world: World) -> None:
    changes = FlowChanges("night", "send night calls to the answering service")
    run(world, CCM, changes.draft(night()), changes.publish())
    run(world, CCM, changes.draft(night(transfer=OUTSIDE)))
    asked = run(world, CCM, changes.publish())
    assert asked.status == "requested" and asked.change_request is not None
    request_id = asked.change_request.id
    assert asked.change_request.domains == ["infrastructure"]
    assert {"field": "outside_numbers", "before": [], "after": [OUTSIDE]} in asked.diff
    current = published(world)
    assert current is not None and current["version"] == 1  # calls still run version 1
    with world.db.session() as session, pytest.raises(NotAllowed, match="waits for the owner"):
        service.decide(session, world.actor("phone_manager"), "api", request_id, approve=True)
    with world.db.session() as session:
        done = service.decide(session, world.actor(TC), "api", request_id, approve=True,
                              comment="the answering service is on the SIP trunk")
    assert done.status == "applied"
    current = published(world)
    assert current is not None and current["version"] == 2 and current["by"] == CCM
    assert outside_numbers(current["document"]) == [OUTSIDE]
    # the number is reached already: publishing another version of it needs nobody else
    run(world, CCM, changes.draft(night("x", transfer=OUTSIDE)))
    assert run(world, CCM, changes.publish()).status == "applied"


def test_a_change_request_is_not_applied_over_a_draft_edited_since(world: World) -> None:
    changes = FlowChanges("night")
    run(world, CCM, changes.draft(night(transfer=OUTSIDE)))
    asked = run(world, CCM, changes.publish())
    assert asked.change_request is not None
    run(world, CCM, changes.draft(night("edited meanwhile", transfer=OUTSIDE)))
    with world.db.session() as session, pytest.raises(Conflict, match="changed after change"):
        service.decide(session, world.actor(TC), "api", asked.change_request.id, approve=True)
    assert published(world) is None


def test_an_unusable_flow_is_refused_naming_flow_and_node_and_nothing_is_written(
        world: World) -> None:
    broken = FlowDocument.model_validate({"name": "night", "nodes": {
        "start": {"type": "start", "next": "ring"},
        "ring": {"type": "ring", "targets": ["group:nobody-here"], "no_answer": "bye"},
        "bye": {"type": "hangup"}}})
    run(world, CCM, FlowChanges("night").draft(broken))
    before = dump(world.db)
    with pytest.raises(FlowRejected) as caught:
        run(world, CCM, FlowChanges("night").publish())
    assert any('flow "night" node "ring": target group "nobody-here" does not exist' in p
               for p in caught.value.problems), caught.value.problems
    assert dump(world.db) == before
    with pytest.raises(NotFound, match='flow "other" has no draft to publish'):
        run(world, CCM, FlowChanges("other").publish())
