"""The readable diff of a flow change: steps added / removed / changed (node id and field
old -> new), messages and settings — pure (``routing.changes``) and on a real change request
through org/'s change path (SQLite and PostgreSQL), where the whole documents stay in the
request and the approved request still applies exactly the reviewed document."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_routing_kind import CCM, OUTSIDE, TC, published, run

from frontdesk.org import service
from frontdesk.routing.changes import MAX_VALUE, document_changes
from frontdesk.routing.kind import FlowChanges, outside_numbers
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.templates import front_desk
from frontdesk.store.db import Database
from orgkit import World, make_world

BASE: dict[str, Any] = front_desk().to_json()


def edited(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    change(doc)
    return doc


def test_equal_documents_have_no_changes() -> None:
    assert document_changes(BASE, copy.deepcopy(BASE)) == []


def test_a_changed_field_names_the_step_and_old_and_new() -> None:
    def shorter(doc: dict[str, Any]) -> None:
        doc["nodes"]["ring-office-manager"]["timeout"] = 15

    assert document_changes(BASE, edited(shorter)) == [
        'step "ring-office-manager": timeout 20 -> 15'
    ]


def test_added_and_removed_steps_say_their_type() -> None:
    def swap(doc: dict[str, Any]) -> None:
        doc["nodes"]["greeting"] = {"type": "play", "message": "after-hours", "next": "end"}
        del doc["nodes"]["ring-service-team"]

    lines = document_changes(BASE, edited(swap))
    assert 'step "ring-service-team" removed (ring)' in lines
    assert 'step "greeting" added (play)' in lines
    assert len(lines) == 2


def test_messages_settings_and_a_first_document() -> None:
    def words(doc: dict[str, Any]) -> None:
        doc["messages"]["after-hours"] = "We are closed today."
        doc["timezone"] = "Europe/Berlin"

    lines = document_changes(BASE, edited(words))
    assert 'timezone: "America/New_York" -> "Europe/Berlin"' in lines
    assert any(line.startswith('message "after-hours": "') and
               line.endswith('-> "We are closed today."') for line in lines)  # fmt: skip
    first = document_changes(None, BASE)
    assert f'step "{next(iter(BASE["nodes"]))}" added (start)' in first


def test_long_values_are_cut() -> None:
    def long_targets(doc: dict[str, Any]) -> None:
        doc["nodes"]["ring-office-manager"]["targets"] = [f"extension:{n}" for n in range(100, 130)]

    (line,) = document_changes(BASE, edited(long_targets))
    new = line.split(" -> ")[1]
    assert len(new) == MAX_VALUE and new.endswith("...")


def night(timeout: int, transfer: str | None = None) -> FlowDocument:
    end: dict[str, Any] = {"type": "transfer", "number": transfer} if transfer else {
        "type": "hangup", "message": "bye"}
    return FlowDocument.model_validate({
        "name": "night", "messages": {"ask": "Press 1.", "bye": "Goodbye."}, "nodes": {
            "start": {"type": "start", "next": "ask"},
            "ask": {"type": "menu", "prompt": "ask", "choices": {"1": "end"},
                    "timeout": timeout, "no_input": "end"},
            "end": end}})  # fmt: skip


@pytest.fixture
def world(db: Database) -> World:
    return make_world(db)


def test_a_flow_change_request_reads_as_steps_and_applies_the_whole_document(
    world: World,
) -> None:
    changes = FlowChanges("night", "night calls to the answering service")
    run(world, CCM, changes.draft(night(5)), changes.publish())
    run(world, CCM, changes.draft(night(8, transfer=OUTSIDE)))
    asked = run(world, CCM, changes.publish())
    request = asked.change_request
    assert request is not None and request.status == "open"
    by_field = {d["field"]: d for d in request.diff}
    assert by_field["published"]["changes"] == [
        'step "ask": timeout 5 -> 8',
        'step "end": type "hangup" -> "transfer"',
        'step "end": message "bye" -> (none)',
        f'step "end": number (none) -> "{OUTSIDE}"',
    ]
    assert by_field["published"]["after"] == night(8, transfer=OUTSIDE).to_json()  # kept whole
    line = service.describe(request)
    assert 'published: step "ask": timeout 5 -> 8, step "end"' in line
    assert '"nodes"' not in line and "{" not in line.split("published:")[1]  # no documents
    with world.db.session() as session:
        done = service.decide(session, world.actor(TC), "api", request.id, approve=True)
    assert done.status == "applied"
    current = published(world)
    assert current is not None and current["document"] == night(8, transfer=OUTSIDE).to_json()
    assert outside_numbers(current["document"]) == [OUTSIDE]
