"""The tickets REST API on SQLite and PostgreSQL, signed in with real bearer tokens:
permissions (403 without, success with), problem+json that names the field for malformed
payloads, unknown request numbers and numbers that cannot be parsed, the helpdesk inbound
API acting as ``helpdesk:<name>``, and webhook endpoints with their delivery log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tickets_support import Acme, api_token

from frontdesk.api.http import create_app
from frontdesk.org.events import EventBus, Recorder
from frontdesk.org.model import PermissionOverride, RoleAssignment
from frontdesk.store.db import Database
from frontdesk.store.models import User

GRANTS = {
    "office_manager": [
        "service_request.read",
        "service_request.create",
        "service_request.update",
        "contact.read",
        "contact.create",
        "contact.update",
        "contact.delete",
    ],
    "technician": ["service_request.read"],
    "service_coordinator": [
        "service_request.read",
        "service_request.create",
        "service_request.update",
    ],
    "technical_contact": ["webhook.read", "webhook.create", "webhook.update", "webhook.delete"],
}


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    bus: Recorder
    acme: Acme

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.request(method, "/api/v1/tickets" + path, headers=headers, **kwargs)


def _seed(db: Database, acme: Acme) -> dict[str, str]:
    tokens: dict[str, str] = {}
    with db.session() as s:
        helpdesk = User(tenant_id=acme.tenant_id, username="zammad", display_name="Zammad sync")
        nobody = User(tenant_id=acme.tenant_id, username="nobody", display_name="No Roles")
        s.add_all([helpdesk, nobody])
        s.flush()
        people = {
            "rita": (acme.receptionist, "office_manager"),
            "tom": (acme.tech_tom, "technician"),
            "zammad": (helpdesk.id, "service_coordinator"),
            "sam": (acme.service_manager, "technical_contact"),
            "nobody": (nobody.id, None),
        }
        for name, (user_id, role) in people.items():
            if role:
                s.add(RoleAssignment(tenant_id=acme.tenant_id, user_id=user_id, role=role))
            tokens[name] = api_token(s, acme.tenant_id, user_id)
        for role, permissions in GRANTS.items():
            s.add_all(
                PermissionOverride(tenant_id=acme.tenant_id, role=role, permission=p, allowed=True)
                for p in permissions
            )
    return tokens


@pytest.fixture
def api(db: Database, acme: Acme) -> Iterator[Api]:
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder)
    app = create_app(db=db, bus=bus)  # the real app: tickets routes are wired in
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, _seed(db, acme), recorder, acme)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def test_front_desk_flow_with_permissions_and_problems(api: Api) -> None:
    bad = api.call(
        "rita",
        "POST",
        "/contacts",
        json={"name": "Ann Lee", "numbers": ["+1 212 555 0100", "555-0100"]},
    )
    problem = _problem(bad, 422)
    assert problem["errors"][0]["field"] == "numbers.1"
    assert "'555-0100' is not a valid number" in problem["detail"]
    assert "international form" in problem["fix"]
    company = api.call("rita", "POST", "/companies", json={"name": "Initech"}).json()
    ann = api.call(
        "rita",
        "POST",
        "/contacts",
        json={"name": "Ann Lee", "numbers": ["(212) 555-0100"], "company_ids": [company["id"]]},
    )
    assert ann.status_code == 201 and ann.json()["numbers"] == ["+12125550100"]
    assert _problem(api.call("tom", "POST", "/contacts", json={"name": "X"}), 403)
    created = api.call(
        "rita",
        "POST",
        "/requests",
        json={
            "title": "Printer jams",
            "contact_id": ann.json()["id"],
            "assignee_id": api.acme.tech_tom,
        },
    )
    assert created.status_code == 201, created.text
    ref = created.json()["ref"]
    assert created.json()["created_by"] == f"user:{api.acme.receptionist}"
    assert _problem(api.call("tom", "POST", "/requests", json={"title": "x"}), 403)
    mine = api.call("tom", "PUT", f"/working-on/{api.acme.tech_tom}", json={"request": ref})
    assert mine.status_code == 200 and mine.json()["request"] == ref
    assert _problem(
        api.call("tom", "PUT", f"/working-on/{api.acme.tech_tina}", json={"request": ref}), 403
    )  # only one's own
    popped = api.call("tom", "GET", "/lookup", params={"number": "sip:+12125550100@trunk"}).json()
    assert popped["contacts"][0]["name"] == "Ann Lee" and not popped["ambiguous"]
    assert popped["open_requests"][0]["working_on_by"] == [api.acme.tech_tom]
    detail = api.call("rita", "PATCH", f"/requests/{ref}", json={"state": "resolved"}).json()
    assert detail["state"] == "resolved" and detail["working_on_by"] == []
    invalid = _problem(
        api.call("rita", "PATCH", f"/requests/{ref}", json={"state": "waiting"}), 409
    )
    assert (
        invalid["errors"][0]["field"] == "state" and "cannot go from resolved" in invalid["detail"]
    )
    routing_keys = [e.routing_key for e in api.bus.events]
    assert "request.created" in routing_keys and "request.working_on_set" in routing_keys


def test_unknown_and_malformed_input_is_named(api: Api) -> None:
    unknown = _problem(api.call("rita", "GET", "/requests/SR-9999"), 404)
    assert unknown["detail"] == "service request SR-9999 does not exist in tenant acme"
    assert unknown["errors"][0]["field"] == "request"
    shape = _problem(api.call("rita", "GET", "/requests/ticket-5"), 422)
    assert shape["errors"][0]["field"] == "ref"
    extra = _problem(
        api.call("rita", "POST", "/requests", json={"title": "x", "colour": "red"}), 422
    )
    assert extra["errors"][0]["field"] == "colour"
    typed = _problem(
        api.call("rita", "POST", "/requests", json={"title": "x", "priority": "asap"}), 422
    )
    assert typed["errors"][0]["field"] == "priority"
    missing = _problem(api.call("rita", "POST", "/requests", json={}), 422)
    assert missing["errors"][0]["field"] == "title"
    assert _problem(api.call("", "GET", "/requests"), 401)
    assert _problem(api.call("nobody", "GET", "/requests"), 403)


def test_helpdesk_inbound_api(api: Api) -> None:
    new = _problem(
        api.call("zammad", "PUT", "/helpdesk/requests/4711", json={"state": "open"}), 422
    )
    assert new["errors"][0]["field"] == "title"
    made = api.call(
        "zammad",
        "PUT",
        "/helpdesk/requests/4711",
        json={"title": "VPN down", "assignee": "tom@acme.example"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["external_source"], body["external_ref"], body["created_by"]) == (
        "zammad",
        "4711",
        "helpdesk:zammad",
    )
    assert body["assignee_id"] == api.acme.tech_tom
    again = api.call(
        "zammad",
        "PUT",
        "/helpdesk/requests/4711",
        json={"state": "waiting", "note": "asked customer for logs"},
    )
    assert again.status_code == 200 and again.json()["state"] == "waiting"
    assert again.json()["notes"][-1]["actor"] == "helpdesk:zammad"
    marked = api.call("zammad", "PUT", "/helpdesk/working-on/tom", json={"request": "4711"})
    assert marked.status_code == 200 and marked.json()["set_by"] == "helpdesk:zammad"
    assert marked.json()["request"] == body["ref"]
    who = _problem(
        api.call("zammad", "PUT", "/helpdesk/working-on/ghost", json={"request": "4711"}), 404
    )
    assert who["errors"][0]["field"] == "technician"
    what = _problem(
        api.call("zammad", "PUT", "/helpdesk/working-on/tom", json={"request": "9999"}), 404
    )
    assert "helpdesk 'zammad' has no request '9999'" in what["detail"]
    assert api.call("zammad", "DELETE", "/helpdesk/working-on/tom").status_code == 204
    assert api.call("tom", "GET", f"/working-on/{api.acme.tech_tom}").json()["request"] is None


def test_webhook_endpoints_and_delivery_log(api: Api) -> None:
    made = api.call(
        "sam",
        "POST",
        "/webhooks",
        json={"name": "helpdesk", "url": "https://hd.example/hook", "events": ["request.*"]},
    )
    assert made.status_code == 201, made.text
    assert len(made.json()["secret"]) == 64
    endpoint_id = made.json()["id"]
    assert "secret" not in api.call("sam", "GET", "/webhooks").json()[0]
    assert _problem(api.call("rita", "GET", "/webhooks"), 403)
    bad = _problem(api.call("sam", "POST", "/webhooks", json={"name": "x", "url": "ftp://x"}), 422)
    assert bad["errors"][0]["field"] == "url"
    api.call("rita", "POST", "/requests", json={"title": "Printer"})
    log = api.call("sam", "GET", f"/webhooks/{endpoint_id}/deliveries").json()
    assert [(d["event_name"], d["status"], d["attempts"]) for d in log] == [
        ("request.created", "pending", 0)
    ]
    again = api.call("sam", "POST", f"/webhook-deliveries/{log[0]['id']}/redeliver")
    assert again.status_code == 200 and again.json()["status"] == "pending"
    assert _problem(api.call("sam", "GET", "/webhooks/999/deliveries"), 404)
