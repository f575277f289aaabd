"""REST API: the generic version history and rollback (/api/v1/versions) reach every
registered resource kind — voicemail settings, mailboxes, greetings, menus and flows as
much as users and extensions — and a rollback through them is an ordinary audited change.
On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from permsuite import VOICEMAIL, Api

from frontdesk.org import audit
from frontdesk.org.resources import kinds
from frontdesk.org.roles import PERMISSIONS
from frontdesk.org.service import Change

VERSIONED = sorted(name for name in kinds() if f"{name}.read" in PERMISSIONS)


def test_every_readable_kind_is_versioned_through_the_api() -> None:
    assert {"flow", "voicemail", "mailbox", "greeting", "menu", "user"} <= set(VERSIONED)


@pytest.mark.parametrize("resource_type", VERSIONED)
def test_the_versions_endpoint_accepts_every_registered_kind(api: Api,
                                                             resource_type: str) -> None:
    """An unknown key is "no recorded versions" (404), never "unknown type" (422)."""
    answer = api.client.get("/api/v1/versions", headers=api.world.headers("administrator"),
                            params={"resource_type": resource_type, "key": "no-such-thing"})
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "no recorded versions" in answer.json()["detail"]


def test_an_unknown_type_is_refused_naming_the_field(api: Api) -> None:
    answer = api.client.get("/api/v1/versions", headers=api.world.headers("administrator"),
                            params={"resource_type": "api_token", "key": "1"})
    assert answer.status_code == 422
    assert "resource_type" in answer.text


def _history(api: Api, headers: dict[str, str], kind: str, key: str) -> list[dict[str, object]]:
    answer = api.client.get("/api/v1/versions", headers=headers,
                            params={"resource_type": kind, "key": key})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_a_mailbox_history_and_rollback_through_the_api(api: Api) -> None:
    world, pm = api.world, api.world.headers("phone_manager")
    made = api.client.post(f"{VOICEMAIL}/mailboxes", headers=pm, json={
        "number": "3301", "name": "Reception", "pin": "1234", "responsible": ["101"]})
    assert made.status_code == 201, made.text
    changed = api.client.patch(f"{VOICEMAIL}/mailboxes/3301", headers=pm, json={
        "name": "Front office", "responsible": ["101", "102"],
        "check_schedule": {"hours": [9, 13]}, "reason": "two people check it now"})
    assert changed.status_code == 200, changed.text
    history = _history(api, pm, "mailbox", "3301")
    assert [(v["version"], v["actor"]) for v in history] == [(1, "phone_manager"),
                                                             (2, "phone_manager")]
    first = history[0]["snapshot"]
    assert isinstance(first, dict) and first["name"] == "Reception" and first["pin"] == "(secret)"
    # the service manager may read the history but not roll it back
    assert _history(api, world.headers("service_manager"), "mailbox", "3301") == history
    body = {"resource_type": "mailbox", "key": "3301", "version": 1, "reason": "undo"}
    denied = api.client.post("/api/v1/versions/rollback", headers=world.headers(
        "service_manager"), json=body)
    assert denied.status_code == 403 and "mailbox.update" in denied.json()["detail"]
    back = api.client.post("/api/v1/versions/rollback",
                           headers=world.headers("contact_center_manager"), json=body)
    assert back.status_code == 200, back.text
    assert back.json()["status"] == "applied" and back.json()["version"] == 3
    shown = api.client.get(f"{VOICEMAIL}/mailboxes/3301", headers=pm).json()
    assert (shown["name"], shown["responsible"], shown["check_schedule"]) == (
        "Reception", ["101"], None)
    trail = api.client.get("/api/v1/audit?resource_type=mailbox&resource_key=3301",
                           headers=pm).json()
    assert [(e["actor"], e["action"]) for e in trail][-1] == ("contact_center_manager",
                                                              "update")
    assert trail[-1]["reason"] == "rollback to version 1: undo"
    with world.db.session() as session:
        assert audit.verify(session).ok
    # the PIN survives the rollback: a version never holds it, so it is not written back
    with world.db.session() as session:
        from frontdesk.media import voicemail_store as store

        box = store.get_mailbox(session, world.tenant_id, "3301")
        assert box is not None and store.verify_pin("1234", box.pin_hash)


def test_the_voicemail_settings_history_and_rollback_through_the_api(api: Api) -> None:
    world, pm = api.world, api.world.headers("phone_manager")
    earlier = api.client.get(f"{VOICEMAIL}/settings", headers=pm).json()
    for seconds, policy in ((90, "allowed"), (120, "forbidden")):
        answer = api.client.patch(f"{VOICEMAIL}/settings", headers=pm, json={
            "max_message_seconds": seconds, "greeting_policy": policy})
        assert answer.status_code == 200, answer.text
    history = _history(api, pm, "voicemail", "settings")
    # the defaults (never stored) are kept as the version before the first change
    assert [v["snapshot"]["max_message_seconds"] for v in history] == [  # type: ignore[index]
        earlier["max_message_seconds"], 90, 120]
    back = api.client.post("/api/v1/versions/rollback", headers=pm, json={
        "resource_type": "voicemail", "key": "settings", "version": history[1]["version"]})
    assert back.status_code == 200, back.text
    now = api.client.get(f"{VOICEMAIL}/settings", headers=pm).json()
    assert (now["max_message_seconds"], now["greeting_policy"]) == (90, "allowed")
    assert now["greeting_template"] == earlier["greeting_template"]
    missing = api.client.post("/api/v1/versions/rollback", headers=pm, json={
        "resource_type": "voicemail", "key": "settings", "version": 99})
    assert missing.status_code == 404
    assert "no version 99" in missing.json()["detail"]
    world.setup(Change("voicemail", "update", "settings", {"greeting_policy":
                                                           "approval_required"}))


def test_a_flow_history_is_shown_and_its_rollback_points_to_the_flows_own(api: Api) -> None:
    from permsuite import _flow_published_twice

    _flow_published_twice(api.world, "evening-h6")
    admin = api.world.headers("administrator")
    history = _history(api, admin, "flow", "evening-h6")
    assert history[-1]["snapshot"]["published_version"] == 2  # type: ignore[index]
    before = _history(api, admin, "flow", "evening-h6")
    refused = api.client.post("/api/v1/versions/rollback", headers=admin, json={
        "resource_type": "flow", "key": "evening-h6", "version": 1})
    assert refused.status_code == 422, refused.text
    assert "/api/v1/flows/evening-h6/rollback" in refused.json()["fix"]
    assert _history(api, admin, "flow", "evening-h6") == before
