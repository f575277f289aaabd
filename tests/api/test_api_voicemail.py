"""REST API: voicemail configuration (greeting settings, mailboxes, greetings) — the shared
permission suite for every role x action, and what is particular to it: the PIN never
appears anywhere, an owner changes only their own PIN, a decided greeting cannot be decided
again, bad input is a problem naming the field. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from permsuite import CASES, VOICEMAIL, Api, _greeting_upload, permission_tests

from frontdesk.org import audit, versions
from frontdesk.org.service import Change, rollback
from orgkit import audit_count, dump


@pytest.fixture(autouse=True, scope="module")
def _data_dir(api: Api, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Uploaded greetings go to a data directory of this module's own."""
    api.client.app.state.data_dir = tmp_path_factory.mktemp("voicemail-data")  # type: ignore[attr-defined]


test_voicemail_permissions = permission_tests(CASES["voicemail"])
test_mailbox_permissions = permission_tests(CASES["mailbox"])
test_greeting_permissions = permission_tests(CASES["greeting"])

PIN = "97531864"


def test_the_pin_is_never_shown_stored_in_clear_or_audited(api: Api) -> None:
    pm = api.world.headers("phone_manager")
    made = api.client.post(f"{VOICEMAIL}/mailboxes", headers=pm,
                           json={"number": "4401", "name": "Reception", "pin": PIN})
    assert made.status_code == 201, made.text
    assert made.json()["pin"] == "(secret)"
    changed = api.client.patch(f"{VOICEMAIL}/mailboxes/4401", headers=pm,
                               json={"pin": "86420000", "reason": "new receptionist"})
    assert changed.status_code == 200, changed.text
    shown = api.client.get(f"{VOICEMAIL}/mailboxes/4401", headers=pm).json()
    assert shown["pin"] == "(secret)"
    trail = api.client.get("/api/v1/audit?resource_type=mailbox&resource_key=4401",
                           headers=pm).json()
    assert [(e["action"], e["channel"], e["actor"]) for e in trail] == [
        ("create", "api", "phone_manager"), ("update", "api", "phone_manager")]
    assert trail[1]["reason"] == "new receptionist" and trail[1]["after"]["pin"] == "(secret)"
    tables = dump(api.world.db)
    for table in ("audit_log", "resource_versions", "change_requests"):
        text = repr(tables.get(table, []))
        assert PIN not in text and "86420000" not in text and "scrypt" not in text, table


def test_an_owner_changes_their_own_pin_but_nothing_else(api: Api) -> None:
    world = api.world
    world.setup(Change("extension", "create", "4402", {"display_name": "Tech desk",
                                                        "user": "technician"}),
                Change("mailbox", "create", "4402", {"pin": "1234"}))
    mine = world.headers("technician")
    before = audit_count(world.db)
    own = api.client.patch(f"{VOICEMAIL}/mailboxes/4402", headers=mine, json={"pin": "4321"})
    assert own.status_code == 200, own.text
    assert audit_count(world.db) == before + 1
    snapshot = dump(world.db)
    name = api.client.patch(f"{VOICEMAIL}/mailboxes/4402", headers=mine, json={"name": "Me"})
    assert name.status_code == 403 and "mailbox.update" in name.json()["detail"]
    other = api.client.patch(f"{VOICEMAIL}/mailboxes/4401", headers=mine, json={"pin": "4321"})
    assert other.status_code in (403, 404)
    assert dump(world.db) == snapshot


def test_a_greeting_is_decided_once_and_its_approval_rolls_back(api: Api) -> None:
    world = api.world
    world.setup(Change("mailbox", "create", "4403", {"name": "Sales", "pin": "1234"}),
                Change("greeting", "create", None, {"mailbox": "4403", "source": "phone",
                                                    "audio_path": "prompts/uploads/x.wav"}))
    listed = api.client.get(f"{VOICEMAIL}/greetings", headers=world.headers("phone_manager"))
    [greeting] = [g for g in listed.json() if g["mailbox"] == "4403"]
    assert greeting["status"] == "pending_approval" and greeting["created_by"] == \
        "local administrator"
    path = f"{VOICEMAIL}/greetings/{greeting['id']}"
    ccm = world.headers("contact_center_manager")
    ok = api.client.post(f"{path}/approve", headers=ccm)
    assert ok.status_code == 200 and ok.json()["status"] == "active", ok.text
    assert ok.json()["decided_by"] == "contact_center_manager"
    for decision in ("approve", "reject"):
        again = api.client.post(f"{path}/{decision}", headers=ccm)
        assert again.status_code == 409, again.text
        assert again.headers["content-type"] == "application/problem+json"
    with world.db.session() as session:
        back = rollback(session, world.actor("phone_manager"), "api", "greeting",
                        str(greeting["id"]), 1, reason="approved by mistake")
        assert back.status == "applied" and back.after is not None
        assert back.after["status"] == "pending_approval"
        assert audit.verify(session).ok


def test_settings_changes_are_checked_versioned_and_rolled_back(api: Api) -> None:
    world, pm = api.world, api.world.headers("phone_manager")
    bad = api.client.patch(f"{VOICEMAIL}/settings", headers=pm,
                           json={"greeting_template": "Call {nobody} now."})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert "{nobody}" in bad.json()["detail"]
    earlier = api.client.get(f"{VOICEMAIL}/settings", headers=pm).json()
    good = api.client.patch(f"{VOICEMAIL}/settings", headers=pm, json={
        "greeting_template": "You reached {name}. For urgent matters call {urgent}.",
        "variables": {"urgent": "102"}, "greeting_policy": "forbidden"})
    assert good.status_code == 200, good.text
    assert good.json()["greeting_policy"] == "forbidden"
    with world.db.session() as session:
        latest = versions.latest(session, world.tenant_id, "voicemail", "settings")
        assert latest is not None and latest.actor == "phone_manager"
        back = rollback(session, world.actor("contact_center_manager"), "api", "voicemail",
                        "settings", latest.version - 1, reason="too strict")
        assert back.status == "applied" and back.version == latest.version + 1
    assert api.client.get(f"{VOICEMAIL}/settings", headers=pm).json() == earlier
    denied = api.client.patch(f"{VOICEMAIL}/settings", headers=world.headers("service_manager"),
                              json={"greeting_policy": "allowed"})
    assert denied.status_code == 403 and "voicemail.update" in denied.json()["detail"]


def test_an_uploaded_greeting_is_checked_converted_and_audited(api: Api) -> None:
    world, pm = api.world, api.world.headers("phone_manager")
    world.setup(Change("mailbox", "create", "4404", {"name": "Service", "pin": "1234"}))
    good = _greeting_upload({"number": "4404"})
    silent = dict(good, audio_base64=base64.b64encode(
        base64.b64decode(good["audio_base64"])[:44] + b"\x00" * 24000).decode())
    refused = api.client.post(f"{VOICEMAIL}/greetings", headers=pm, json=silent)
    assert refused.status_code == 422, refused.text
    assert "silent" in refused.json()["detail"]
    made = api.client.post(f"{VOICEMAIL}/greetings", headers=pm, json=good)
    assert made.status_code == 201, made.text
    assert (made.json()["mailbox"], made.json()["source"], made.json()["status"]) == (
        "4404", "upload", "active")
    stored = Path(api.client.app.state.data_dir) / made.json()["audio_path"]  # type: ignore[attr-defined]
    assert stored.read_bytes()[:4] == b"RIFF"
    trail = api.client.get(f"/api/v1/audit?resource_type=greeting&resource_key="
                           f"{made.json()['id']}", headers=pm).json()
    assert [(e["actor"], e["channel"], e["action"]) for e in trail] == [
        ("phone_manager", "api", "create")]


def test_a_voicemail_change_from_outside_the_business_domain_waits_for_its_owner(
        api: Api) -> None:
    """The tenant lets the Technical Contact change voicemail settings: their change is a
    change request (business domain) that the Phone Manager approves."""
    world = api.world
    world.setup(Change("permission", "update", "technical_contact/voicemail.update",
                       {"allowed": True}))
    asked = api.client.patch(f"{VOICEMAIL}/settings", headers=world.headers("technical_contact"),
                             json={"max_message_seconds": 77, "reason": "disk is small"})
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert request["domains"] == ["business"] and request["resource_type"] == "voicemail"
    pm = world.headers("phone_manager")
    assert api.client.get(f"{VOICEMAIL}/settings", headers=pm).json()[
        "max_message_seconds"] != 77
    approved = api.client.post(f"/api/v1/change-requests/{request['id']}/approve", headers=pm,
                               json={"comment": "fine"})
    assert approved.status_code == 200, approved.text
    assert api.client.get(f"{VOICEMAIL}/settings", headers=pm).json()[
        "max_message_seconds"] == 77
    world.setup(Change("permission", "update", "technical_contact/voicemail.update",
                       {"allowed": None}))  # back to the default matrix for later tests
