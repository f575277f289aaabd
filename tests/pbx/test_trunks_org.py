"""A business owner pointing the main flow at an outside number reached over a SIP trunk:
the publish becomes a change request (infrastructure), the Technical Contact approves it,
and then the engine — on the snapshot loaded from that database — sends the carrier's call
to the main DID back out through the trunk to the outside number. Trunk changes themselves
are infrastructure: a contact-center manager cannot make one. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from inmemory import Net
from test_trunks import CARRIER_HOST, CARRIER_PORT, Carrier

from frontdesk.org import service
from frontdesk.org.errors import NotAllowed
from frontdesk.org.service import Change, ChangeOutcome, apply_change
from frontdesk.pbx.directory import load_directory
from frontdesk.routing.kind import FlowChanges
from frontdesk.routing.model import FlowDocument
from frontdesk.store.db import Database
from orgkit import World, make_world
from store.conftest import db_url, open_db, pg_server_url  # noqa: F401  (fixtures)

CCM, TC = "contact_center_manager", "technical_contact"
ANSWERING_SERVICE = "+15559870000"
TRUNK = {"host": CARRIER_HOST, "port": CARRIER_PORT, "username": "acme-trunk",
         "password": "carrier-pw", "sources": [CARRIER_HOST],
         "dids": {"+15551230000": "main"}, "dial_rules": ["+"]}


@pytest.fixture
def world(db_url: str, open_db: Callable[[str], Database]) -> World:  # noqa: F811
    database = open_db(db_url)
    database.migrate()
    return make_world(database)


def run(world: World, who: str, change: Any) -> ChangeOutcome:
    with world.db.session() as session:
        return apply_change(session, world.actor(who), "api", change)


def to_answering_service() -> FlowDocument:
    return FlowDocument.model_validate({
        "name": "front-desk", "nodes": {
            "start": {"type": "start", "next": "out"},
            "out": {"type": "transfer", "number": ANSWERING_SERVICE}}})


def test_only_infrastructure_owners_make_trunks(world: World) -> None:
    with pytest.raises(NotAllowed, match=r"trunk\.create"):
        run(world, CCM, Change("trunk", "create", "carrier", dict(TRUNK)))
    assert run(world, TC, Change("trunk", "create", "carrier", dict(TRUNK))).status == "applied"


def test_an_approved_outside_transfer_goes_out_through_the_trunk(world: World) -> None:
    assert run(world, TC, Change("trunk", "create", "carrier", dict(TRUNK))).status == "applied"
    changes = FlowChanges("front-desk", "after hours: the answering service")
    run(world, CCM, changes.draft(to_answering_service()))
    asked = run(world, CCM, changes.publish())
    assert asked.status == "requested" and asked.change_request is not None
    assert asked.change_request.domains == ["infrastructure"]
    with world.db.session() as session:
        done = service.decide(session, world.actor(TC), "api", asked.change_request.id,
                              approve=True, comment="the answering service is on our trunk")
    assert done.status == "applied"

    with world.db.session() as session:
        directory = load_directory(session)
    [trunk] = directory.trunks
    assert trunk.name == "carrier" and trunk.password == "carrier-pw"
    net = Net(directory)
    carrier = Carrier(net)
    carrier.invite("+15551230000")
    [out] = carrier.invites()
    assert out.uri == f"sip:{ANSWERING_SERVICE}@{CARRIER_HOST}:{CARRIER_PORT}"
