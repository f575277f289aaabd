"""The shared permission suite (STYLE #10): for every resource, every role x every action
is checked against the default matrix in ``frontdesk.org.roles``.

What it is for: each resource's test module does ``test_permissions =
permission_tests(CASES["extension"])``. For a role the matrix denies, the call must answer
403 problem+json and change nothing at all (every table compared). For a role it allows, a
read answers 200 and writes nothing; a change writes exactly one audit row, and is applied
(200/201/204) when the role owns every domain the change touches, or becomes a change
request (202, only the request and its audit row written) when it does not. The expected
answer is computed from the matrix and ``DOMAIN_OWNERS`` — data, not the code under test.

What it must never do: set targets up through the API under test (setup goes through
``org.service`` as the local administrator), or expect anything the matrix does not say.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from frontdesk.org.roles import DEFAULT_PERMISSIONS, DOMAIN_OWNERS, Domain, Role
from frontdesk.org.service import Change
from frontdesk.store.models import utcnow
from orgkit import World, audit_count, dump

BUSINESS, INFRA = Domain.BUSINESS, Domain.INFRASTRUCTURE
Target = dict[str, Any]
_tags = itertools.count(1)


def _none(world: World, tag: str) -> Target:
    return {"tag": tag}


@dataclass(frozen=True)
class Case:
    """One action on one resource, as an HTTP call with its own freshly made target."""

    permission: str
    method: str
    path: Callable[[Target], str]
    body: Callable[[Target], dict[str, Any] | None] = lambda t: None
    setup: Callable[[World, str], Target] = _none
    domains: frozenset[Domain] = field(default_factory=lambda: frozenset({BUSINESS}))
    ok_status: int = 200

    @property
    def reads(self) -> bool:
        return self.permission.endswith(".read") or self.permission == "audit.verify"

    def __str__(self) -> str:
        return self.permission


@dataclass
class Api:
    """A module's world and a client for its app."""

    world: World
    client: TestClient


def expected_status(role: Role, case: Case) -> int:
    """What the matrix (and domain ownership) says the call must answer."""
    if case.permission not in DEFAULT_PERMISSIONS[role]:
        return 403
    if case.reads:
        return 200
    owned = {d for d, owners in DOMAIN_OWNERS.items() if role in owners}
    return 202 if case.domains - owned else case.ok_status


def check(api: Api, role: Role, case: Case) -> None:
    """Run ``case`` as the user holding ``role`` and hold the answer to the matrix."""
    world, db = api.world, api.world.db
    target = case.setup(world, f"t{next(_tags)}")
    before, audit_before = dump(db), audit_count(db)
    response = api.client.request(case.method, case.path(target), json=case.body(target),
                                  headers=world.headers(role.value))
    expected = expected_status(role, case)
    assert response.status_code == expected, (role, case.permission, response.text)
    after = dump(db)
    changed = {t for t in after if after[t] != before[t]}
    if expected == 403:
        assert response.headers["content-type"] == "application/problem+json"
        assert case.permission in response.json()["detail"]
        assert changed == set(), f"a denied call changed {changed}"
    elif case.reads:
        assert changed == set(), f"a read changed {changed}"
    elif expected == 202:
        assert audit_count(db) == audit_before + 1
        assert changed == {"audit_log", "change_requests"}, changed
        assert response.json()["status"] == "open"
    else:
        assert audit_count(db) == audit_before + 1
        assert "audit_log" in changed and changed - {"audit_log", "resource_versions"}, changed


def permission_tests(cases: list[Case]) -> Callable[..., None]:
    """A test function parametrized over every role x every case in ``cases``."""

    @pytest.mark.parametrize("case", cases, ids=str)
    @pytest.mark.parametrize("role", list(Role), ids=str)
    def test_permission_matrix(api: Api, role: Role, case: Case) -> None:
        check(api, role, case)

    return test_permission_matrix


# --- targets ----------------------------------------------------------------------------------


def _site(world: World, tag: str) -> Target:
    world.setup(Change("site", "create", tag, {"name": f"Site {tag}"}))
    return {"tag": tag}


def _user(world: World, tag: str) -> Target:
    world.setup(Change("user", "create", tag, {"display_name": f"User {tag}"}))
    return {"tag": tag}


def _extension(world: World, tag: str) -> Target:
    number = tag.replace("t", "9")
    world.setup(Change("extension", "create", number, {"display_name": f"Ext {tag}"}))
    return {"tag": tag, "number": number}


def _group(world: World, tag: str) -> Target:
    world.setup(Change("group", "create", tag, {"display_name": f"Group {tag}"}))
    return {"tag": tag}


def _agent(world: World, tag: str) -> Target:
    world.setup(Change("user", "create", tag, {"display_name": f"Agent {tag}"}),
                Change("role_assignment", "create", None, {"user": tag, "role": "agent"}))
    return {"tag": tag}


def _permission_default(world: World, tag: str) -> Target:
    world.setup(Change("permission", "update", "agent/cdr.read", {"allowed": None}))
    return {"tag": tag}


def _grant(world: World, tag: str) -> Target:
    ends = (utcnow() + timedelta(hours=2)).isoformat()
    with world.db.session() as session:
        from frontdesk.org.service import apply_change

        outcome = apply_change(session, world.admin, "cli", Change(
            "vendor_grant", "create", None, {"user": "vendor", "permissions": ["tenant.read"],
                                             "ends": ends, "reason": "support case"}))
    return {"tag": tag, "id": outcome.resource_key}


def _hour_from_now(target: Target) -> dict[str, Any]:
    return {"user": "vendor", "permissions": ["tenant.read"], "reason": "upgrade",
            "ends": (utcnow() + timedelta(hours=1)).isoformat()}


def flow_document(name: str, transfer: str | None = None, message: str = "closed") -> dict[str, Any]:
    """A small valid call flow: hang up after a message, or transfer to ``transfer``."""
    end: dict[str, Any] = ({"type": "transfer", "number": transfer} if transfer
                           else {"type": "hangup", "message": "bye"})
    return {"name": name, "messages": {"bye": message},
            "nodes": {"start": {"type": "start", "next": "end"}, "end": end}}


def _flow_draft(world: World, tag: str, transfer: str | None = None) -> Target:
    from frontdesk.routing.kind import FlowChanges

    world.setup(FlowChanges(tag).draft(flow_document(tag, transfer)))
    return {"tag": tag}


def _flow_outside_draft(world: World, tag: str) -> Target:
    return _flow_draft(world, tag, transfer="+15551230000")


def _flow_published_twice(world: World, tag: str) -> Target:
    from frontdesk.routing.kind import FlowChanges

    changes = FlowChanges(tag)
    world.setup(changes.draft(flow_document(tag, message="one")), changes.publish(),
                changes.draft(flow_document(tag, message="two")), changes.publish())
    return {"tag": tag}


def _mailbox(world: World, tag: str) -> Target:
    number = tag.replace("t", "7")
    world.setup(Change("mailbox", "create", number, {"name": f"Box {tag}", "pin": "1234"}))
    return {"tag": tag, "number": number}


def _pending_greeting(world: World, tag: str) -> Target:
    """A mailbox and a greeting recorded for it by phone, waiting for approval."""
    number = _mailbox(world, tag)["number"]
    with world.db.session() as session:
        from frontdesk.org.service import apply_change

        outcome = apply_change(session, world.admin, "cli", Change(
            "greeting", "create", None, {"mailbox": number, "source": "phone",
                                         "audio_path": f"prompts/uploads/{tag}.wav"}))
    return {"tag": tag, "id": outcome.resource_key}


def _seconds(target: Target) -> dict[str, Any]:
    """A longest-message length no earlier case set (tags are unique)."""
    return {"max_message_seconds": 10 + int(target["tag"][1:]) % 3000}


def _greeting_upload(target: Target) -> dict[str, Any]:
    """A 1.5 s tone as a base64 WAV, for the mailbox made by ``_mailbox``."""
    import base64
    import io
    import math
    import struct
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i * 0.35)))
                                 for i in range(12000)))
    return {"mailbox": target["number"],
            "audio_base64": base64.b64encode(buffer.getvalue()).decode()}


def _menu(world: World, tag: str) -> Target:
    number = tag.replace("t", "5")
    world.setup(Change("menu", "create", number, {
        "name": f"Menu {tag}", "prompt": "For sales press 1.",
        "choices": {"1": "extension:101", "0": "hangup"}}))
    return {"tag": tag, "number": number}


def _trunk(world: World, tag: str) -> Target:
    world.setup(Change("trunk", "create", tag, {
        "host": "192.0.2.10", "username": "acme", "password": "carrier-secret",
        "sources": ["192.0.2.10"], "dids": {"+15551230000": "main"}, "dial_rules": ["9"]}))
    return {"tag": tag}


VOICEMAIL = "/api/v1/voicemail"


CASES: dict[str, list[Case]] = {
    "tenant": [
        Case("tenant.read", "GET", lambda t: "/api/v1/tenants/acme"),
        Case("tenant.update", "PATCH", lambda t: "/api/v1/tenants/acme",
             lambda t: {"name": f"Acme {t['tag']}"}),
        Case("tenant.create", "POST", lambda t: "/api/v1/tenants",
             lambda t: {"slug": t["tag"], "name": "New", "sip_domain": f"{t['tag']}.test"},
             domains=frozenset({BUSINESS, INFRA}), ok_status=201),
    ],
    "site": [
        Case("site.read", "GET", lambda t: f"/api/v1/sites/{t['tag']}", setup=_site),
        Case("site.create", "POST", lambda t: "/api/v1/sites",
             lambda t: {"slug": t["tag"], "name": "Branch"}, domains=frozenset({INFRA}),
             ok_status=201),
        Case("site.update", "PATCH", lambda t: f"/api/v1/sites/{t['tag']}",
             lambda t: {"name": "Renamed"}, setup=_site, domains=frozenset({INFRA})),
        Case("site.delete", "DELETE", lambda t: f"/api/v1/sites/{t['tag']}", setup=_site,
             domains=frozenset({INFRA}), ok_status=204),
    ],
    "user": [
        Case("user.read", "GET", lambda t: f"/api/v1/users/{t['tag']}", setup=_user),
        Case("user.create", "POST", lambda t: "/api/v1/users",
             lambda t: {"username": t["tag"], "display_name": "New person"}, ok_status=201),
        Case("user.update", "PATCH", lambda t: f"/api/v1/users/{t['tag']}",
             lambda t: {"display_name": "Renamed"}, setup=_user),
        Case("user.delete", "DELETE", lambda t: f"/api/v1/users/{t['tag']}", setup=_user,
             ok_status=204),
    ],
    "extension": [
        Case("extension.read", "GET", lambda t: f"/api/v1/extensions/{t['number']}",
             setup=_extension),
        Case("extension.create", "POST", lambda t: "/api/v1/extensions",
             lambda t: {"number": t["tag"].replace("t", "8"), "display_name": "Desk"},
             ok_status=201),
        Case("extension.update", "PATCH", lambda t: f"/api/v1/extensions/{t['number']}",
             lambda t: {"ring_timeout": 17}, setup=_extension),
        Case("extension.delete", "DELETE", lambda t: f"/api/v1/extensions/{t['number']}",
             setup=_extension, ok_status=204),
    ],
    "group": [
        Case("group.read", "GET", lambda t: f"/api/v1/groups/{t['tag']}", setup=_group),
        Case("group.create", "POST", lambda t: "/api/v1/groups",
             lambda t: {"name": t["tag"], "display_name": "Team"}, ok_status=201),
        Case("group.update", "PATCH", lambda t: f"/api/v1/groups/{t['tag']}",
             lambda t: {"features": ["voicemail"]}, setup=_group),
        Case("group.delete", "DELETE", lambda t: f"/api/v1/groups/{t['tag']}", setup=_group,
             ok_status=204),
    ],
    "role_assignment": [
        Case("role_assignment.read", "GET", lambda t: "/api/v1/role-assignments"),
        Case("role_assignment.create", "POST", lambda t: "/api/v1/role-assignments",
             lambda t: {"user": t["tag"], "role": "agent"}, setup=_user, ok_status=201),
        Case("role_assignment.delete", "DELETE",
             lambda t: f"/api/v1/role-assignments/{t['tag']}:agent", setup=_agent,
             ok_status=204),
    ],
    "permission": [
        Case("permission.read", "GET", lambda t: "/api/v1/permissions?role=agent"),
        Case("permission.update", "PUT", lambda t: "/api/v1/permissions/agent/cdr.read",
             lambda t: {"allowed": True}, setup=_permission_default),
    ],
    "vendor_grant": [
        Case("vendor_grant.read", "GET", lambda t: "/api/v1/vendor-grants"),
        Case("vendor_grant.create", "POST", lambda t: "/api/v1/vendor-grants", _hour_from_now,
             domains=frozenset({INFRA}), ok_status=201),
        Case("vendor_grant.delete", "DELETE", lambda t: f"/api/v1/vendor-grants/{t['id']}",
             setup=_grant, domains=frozenset({INFRA})),
    ],
    "change_request": [Case("change_request.read", "GET", lambda t: "/api/v1/change-requests")],
    "audit": [
        Case("audit.read", "GET", lambda t: "/api/v1/audit?limit=5"),
        Case("audit.verify", "GET", lambda t: "/api/v1/audit/verify"),
    ],
    "coverage": [Case("coverage.read", "GET", lambda t: "/api/v1/coverage")],
    "cdr": [Case("cdr.read", "GET", lambda t: "/api/v1/cdrs?limit=5")],
    "voicemail": [
        Case("voicemail.read", "GET", lambda t: f"{VOICEMAIL}/settings"),
        Case("voicemail.update", "PATCH", lambda t: f"{VOICEMAIL}/settings", _seconds),
    ],
    "mailbox": [
        Case("mailbox.read", "GET", lambda t: f"{VOICEMAIL}/mailboxes/{t['number']}",
             setup=_mailbox),
        Case("mailbox.create", "POST", lambda t: f"{VOICEMAIL}/mailboxes",
             lambda t: {"number": t["tag"].replace("t", "6"), "name": "Desk", "pin": "2468"},
             ok_status=201),
        Case("mailbox.update", "PATCH", lambda t: f"{VOICEMAIL}/mailboxes/{t['number']}",
             lambda t: {"responsible": ["101", "service_manager"],
                        "check_schedule": {"hours": [9, 12, 16]}}, setup=_mailbox),
        Case("mailbox.delete", "DELETE", lambda t: f"{VOICEMAIL}/mailboxes/{t['number']}",
             setup=_mailbox, ok_status=204),
    ],
    "greeting": [
        Case("greeting.read", "GET", lambda t: f"{VOICEMAIL}/greetings"),
        # needs the app's data directory set (test_api_voicemail.py does)
        Case("greeting.create", "POST", lambda t: f"{VOICEMAIL}/greetings", _greeting_upload,
             setup=_mailbox, ok_status=201),
        Case("greeting.update", "POST", lambda t: f"{VOICEMAIL}/greetings/{t['id']}/approve",
             setup=_pending_greeting),
    ],
    "menu": [
        Case("menu.read", "GET", lambda t: f"{VOICEMAIL}/menus/{t['number']}", setup=_menu),
        Case("menu.create", "POST", lambda t: f"{VOICEMAIL}/menus",
             lambda t: {"number": t["tag"].replace("t", "4"), "name": "Main menu",
                        "prompt": "For service press 2.", "choices": {"2": "voicemail:102"}},
             ok_status=201),
        Case("menu.update", "PATCH", lambda t: f"{VOICEMAIL}/menus/{t['number']}",
             lambda t: {"choices": {"1": "extension:102", "9": "menu:500"}, "retries": 3},
             setup=_menu),
        Case("menu.delete", "DELETE", lambda t: f"{VOICEMAIL}/menus/{t['number']}",
             setup=_menu, ok_status=204),
    ],
    # SIP trunks (pbx/trunk_kind.py): infrastructure, owned by the Technical Contact
    "trunk": [
        Case("trunk.read", "GET", lambda t: f"/api/v1/trunks/{t['tag']}", setup=_trunk),
        Case("trunk.create", "POST", lambda t: "/api/v1/trunks",
             lambda t: {"name": t["tag"], "host": "192.0.2.20", "dial_rules": ["+"]},
             domains=frozenset({INFRA}), ok_status=201),
        Case("trunk.update", "PATCH", lambda t: f"/api/v1/trunks/{t['tag']}",
             lambda t: {"port": 5080, "password": "new-secret"}, setup=_trunk,
             domains=frozenset({INFRA})),
        Case("trunk.delete", "DELETE", lambda t: f"/api/v1/trunks/{t['tag']}", setup=_trunk,
             domains=frozenset({INFRA}), ok_status=204),
    ],
    "flow": [
        Case("flow.read", "GET", lambda t: f"/api/v1/flows/{t['tag']}/versions",
             setup=_flow_draft),
        Case("flow.read", "POST", lambda t: "/api/v1/flows/simulate",
             lambda t: {"from": "+12125550147", "to": "main"}),
        Case("flow.draft", "PUT", lambda t: f"/api/v1/flows/{t['tag']}/draft",
             lambda t: flow_document(t["tag"])),
        Case("flow.discard", "DELETE", lambda t: f"/api/v1/flows/{t['tag']}/draft",
             setup=_flow_draft),
        Case("flow.publish", "POST", lambda t: f"/api/v1/flows/{t['tag']}/publish",
             lambda t: {"reason": "new hours"}, setup=_flow_draft),
        # sends calls to a new outside number: infrastructure (the Technical Contact approves)
        Case("flow.publish", "POST", lambda t: f"/api/v1/flows/{t['tag']}/publish",
             lambda t: {}, setup=_flow_outside_draft, domains=frozenset({BUSINESS, INFRA})),
        Case("flow.rollback", "POST", lambda t: f"/api/v1/flows/{t['tag']}/rollback",
             lambda t: {"to_version": 1}, setup=_flow_published_twice),
    ],
}
