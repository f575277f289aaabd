"""REST API: SIP trunks (/api/v1/trunks) — the shared permission suite for every role x
action (a change by a role that does not own infrastructure is a change request), and what
is particular to them: the password never reads back (API, versions, audit) and a rollback
never overwrites it, bad input names the field and the fix, a removed trunk is gone.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from permsuite import CASES, Api, permission_tests
from sqlalchemy import select

from frontdesk.org.service import Change
from frontdesk.store.models import Extension
from orgkit import dump

test_trunk_permissions = permission_tests(CASES["trunk"])

TRUNKS = "/api/v1/trunks"


@pytest.fixture(autouse=True)
def _extension_101(api: Api) -> None:
    with api.world.db.session() as session:
        exists = session.scalar(select(Extension.id).where(Extension.number == "101"))
    if exists is None:  # the module's world is shared by its tests
        api.world.setup(Change("extension", "create", "101", {"display_name": "Ann"}))
CARRIER = {"name": "carrier", "host": "192.0.2.50", "port": 5062, "username": "acme",
           "password": "pa55-carrier", "sources": ["192.0.2.50", "198.51.100.0/24"],
           "dids": {"+1 555 123 0000": "main", "+15551230101": "ext:101"},
           "dial_rules": ["9", "+"], "caller_id": "+15551230000"}


def test_a_trunk_is_made_read_and_its_password_never_shows(api: Api) -> None:
    tc = api.world.headers("technical_contact")
    made = api.client.post(TRUNKS, headers=tc, json=CARRIER)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["password"] == "(secret)"
    assert body["dids"] == {"+15551230000": "main", "+15551230101": "ext:101"}
    assert body["sources"] == ["192.0.2.50/32", "198.51.100.0/24"]
    read = api.client.get(f"{TRUNKS}/carrier", headers=api.world.headers("phone_manager"))
    assert read.status_code == 200 and read.json()["password"] == "(secret)"
    changed = api.client.patch(f"{TRUNKS}/carrier", headers=tc,
                               json={"password": "rotated-pw", "port": 5070})
    assert changed.status_code == 200, changed.text
    tables = dump(api.world.db, skip=("alembic_version", "trunks"))
    assert any("trunk" in row for row in map(str, tables["audit_log"]))
    text = json.dumps(tables)
    assert "pa55-carrier" not in text and "rotated-pw" not in text
    stored = dump(api.world.db)["trunks"]
    assert any("rotated-pw" in row for row in stored)  # kept where digest needs it


def test_bad_trunk_input_names_the_field_and_the_fix(api: Api) -> None:
    tc = api.world.headers("technical_contact")
    bad = api.client.post(TRUNKS, headers=tc, json={**CARRIER, "name": "bad1",
                                                    "dids": {"+15551230000": "ext:999"}})
    assert bad.status_code == 422, bad.text
    assert "ext:999" in bad.text and "existing extension" in bad.text
    unknown = api.client.post(TRUNKS, headers=tc, json={**CARRIER, "name": "bad2",
                                                        "sources": ["not-an-ip"]})
    assert unknown.status_code == 422 and "sources" in unknown.text


def test_a_removed_trunk_is_gone(api: Api) -> None:
    tc = api.world.headers("technical_contact")
    assert api.client.post(TRUNKS, headers=tc, json={**CARRIER, "name": "gone"}).status_code == 201
    assert api.client.delete(f"{TRUNKS}/gone", headers=tc).status_code == 204
    missing = api.client.get(f"{TRUNKS}/gone", headers=tc)
    assert missing.status_code == 404 and "gone" in missing.text


def test_a_trunk_change_is_rolled_back_and_the_password_kept(api: Api) -> None:
    tc = api.world.headers("technical_contact")
    made = api.client.post(TRUNKS, headers=tc, json={**CARRIER, "name": "rb"})
    assert made.status_code == 201, made.text
    changed = api.client.patch(f"{TRUNKS}/rb", headers=tc,
                               json={"port": 5099, "dial_rules": ["+"], "password": "new-pw"})
    assert changed.status_code == 200, changed.text
    history = api.client.get("/api/v1/versions", headers=tc,
                             params={"resource_type": "trunk", "key": "rb"}).json()
    assert [v["version"] for v in history] == [1, 2]
    back = api.client.post("/api/v1/versions/rollback", headers=tc, json={
        "resource_type": "trunk", "key": "rb", "version": 1, "reason": "carrier moved back"})
    assert back.status_code == 200, back.text
    assert api.client.get(f"{TRUNKS}/rb", headers=tc).json() == made.json()
    stored = [row for row in dump(api.world.db)["trunks"] if "rb" in row]
    assert any("new-pw" in row for row in stored)  # a rollback never writes "(secret)"
