"""REST API: self-service menus (/api/v1/voicemail/menus) — the shared permission suite for
every role x action, and what is particular to them: what the server could not run is
refused naming the field, every change is versioned (rolled back through /versions),
audited, and told to the Phone Manager and contact-center manager on the event bus.
On SQLite and PostgreSQL."""

from __future__ import annotations

from permsuite import CASES, VOICEMAIL, Api, permission_tests

from frontdesk.org.events import ChangeApplied, Recorder, StakeholderInformed
from orgkit import audit_count, dump

test_menu_permissions = permission_tests(CASES["menu"])

MENUS = f"{VOICEMAIL}/menus"
MAIN = {"number": "3500", "name": "Main menu", "prompt": "For sales press 1, service 2.",
        "choices": {"1": "extension:101", "2": "voicemail:102"}, "timeout": 4,
        "default_branch": "hangup"}


def test_a_menu_is_made_changed_rolled_back_and_removed(api: Api) -> None:
    world, ccm = api.world, api.world.headers("contact_center_manager")
    made = api.client.post(MENUS, headers=ccm, json=MAIN)
    assert made.status_code == 201, made.text
    assert made.json() == {"number": "3500", "name": "Main menu",
                           "prompt": "For sales press 1, service 2.",
                           "choices": {"1": "extension:101", "2": "voicemail:102"},
                           "timeout": 4.0, "retries": 2,
                           "invalid_prompt": "Sorry, that is not a valid choice.",
                           "default_branch": "hangup"}
    changed = api.client.patch(f"{MENUS}/3500", headers=ccm, json={
        "choices": {"1": "extension:103", "9": "menu:3501"}, "retries": 4,
        "reason": "new sales desk"})
    assert changed.status_code == 200, changed.text
    listed = api.client.get(MENUS, headers=world.headers("phone_manager")).json()
    [mine] = [m for m in listed if m["number"] == "3500"]
    assert mine["retries"] == 4 and mine["choices"] == {"1": "extension:103", "9": "menu:3501"}
    assert [m["number"] for m in listed] == sorted(m["number"] for m in listed)
    history = api.client.get("/api/v1/versions", headers=ccm,
                             params={"resource_type": "menu", "key": "3500"}).json()
    assert [v["version"] for v in history] == [1, 2]
    back = api.client.post("/api/v1/versions/rollback", headers=ccm, json={
        "resource_type": "menu", "key": "3500", "version": 1, "reason": "sales moved back"})
    assert back.status_code == 200, back.text
    assert api.client.get(f"{MENUS}/3500", headers=ccm).json() == made.json()
    trail = api.client.get("/api/v1/audit?resource_type=menu&resource_key=3500",
                           headers=ccm).json()
    assert [(e["action"], e["channel"], e["actor"]) for e in trail] == [
        ("create", "api", "contact_center_manager")] + [
        ("update", "api", "contact_center_manager")] * 2
    assert trail[1]["reason"] == "new sales desk"
    gone = api.client.delete(f"{MENUS}/3500", headers=ccm)
    assert gone.status_code == 204, gone.text
    missing = api.client.get(f"{MENUS}/3500", headers=ccm)
    assert missing.status_code == 404 and "menu '3500' does not exist" in missing.json()["detail"]


def test_what_the_server_could_not_run_is_refused_naming_the_field(api: Api) -> None:
    world, pm = api.world, api.world.headers("phone_manager")
    before, audited = dump(world.db), audit_count(world.db)
    for body, field in (
        (dict(MAIN, choices={"1": "ring:101"}), "choices"),
        (dict(MAIN, choices={}), "choices"),
        (dict(MAIN, choices={"x": "hangup"}), "choices"),
        (dict(MAIN, timeout=0.5), "timeout"),
        (dict(MAIN, retries=12), "retries"),
        (dict(MAIN, default_branch="extension:"), "default_branch"),
        (dict(MAIN, prompt="press\x001"), "prompt"),
        (dict(MAIN, colour="blue"), "colour"),
    ):
        answer = api.client.post(MENUS, headers=pm, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert field in answer.text, (field, answer.text)
    assert dump(world.db) == before and audit_count(world.db) == audited


def test_a_menu_change_is_told_to_the_informed_on_the_event_bus(api: Api) -> None:
    world = api.world
    recorder = Recorder()
    unsubscribe = api.client.app.state.bus.subscribe(recorder)  # type: ignore[attr-defined]
    try:
        made = api.client.post(MENUS, headers=world.headers("administrator"),
                               json=dict(MAIN, number="3510"))
        assert made.status_code == 201, made.text
    finally:
        unsubscribe()
    [applied] = [e for e in recorder.events if isinstance(e, ChangeApplied)]
    assert (applied.resource_type, applied.resource_key, applied.routing_key,
            applied.channel) == ("menu", "3510", "org.menu.created", "api")
    told = {e.role for e in recorder.events if isinstance(e, StakeholderInformed)}
    assert told == {"phone_manager", "contact_center_manager"}  # (the actor is never told)
