"""Answer-time actions through the API when no call engine serves it (a stored call), on
SQLite and PostgreSQL with real bearer tokens; which voicemails become requests; the
webhook retry setting of the server. Live calls are in tests/integration/test_tickets_live.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tickets_support import Acme, api_token

from frontdesk.api.http import create_app
from frontdesk.org.events import EventBus, Recorder
from frontdesk.org.model import PermissionOverride, RoleAssignment
from frontdesk.pbx.tickets_bridge import TicketsConfigError, retry_policy
from frontdesk.store.db import Database
from frontdesk.store.models import Cdr, utcnow
from frontdesk.tickets.calls import CDR_EXTRA_KEY, voicemail_files_request
from frontdesk.tickets.directory import create_contact

CDR_ID = "0b7c6a0e-5d7e-4d1f-9a57-3f1e1c2b9d10"
CALLER = "+12125550100"


@pytest.fixture
def client(db: Database, acme: Acme) -> Iterator[tuple[TestClient, dict[str, str], Recorder]]:
    tokens: dict[str, str] = {}
    with db.session() as s:
        create_contact(s, acme.tenant_id, "Ann Lee", numbers=[CALLER])
        s.add(
            Cdr(
                id=CDR_ID,
                tenant_id=acme.tenant_id,
                call_id="sip-call-1",
                caller=CALLER,
                callee="101",
                callee_answered_by="101",
                started_at=utcnow() - timedelta(minutes=3),
                answered_at=utcnow() - timedelta(minutes=3),
                ended_at=utcnow(),
                disposition="answered",
                extra={"flow": "front-desk"},
            )
        )
        for name, user_id, role in (
            ("rita", acme.receptionist, "office_manager"),
            ("tom", acme.tech_tom, "technician"),
        ):
            s.add(RoleAssignment(tenant_id=acme.tenant_id, user_id=user_id, role=role))
            tokens[name] = api_token(s, acme.tenant_id, user_id)
        s.add_all(
            PermissionOverride(
                tenant_id=acme.tenant_id, role="office_manager", permission=p, allowed=True
            )
            for p in ("service_request.create", "service_request.update")
        )
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder)
    with TestClient(create_app(db=db, bus=bus), raise_server_exceptions=False) as test_client:
        yield test_client, tokens, recorder


def _post(client: TestClient, token: str, path: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/tickets/calls{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )


def test_request_and_note_on_a_stored_call_are_recorded_on_its_cdr(
    db: Database, client: tuple[TestClient, dict[str, str], Recorder]
) -> None:
    api, tokens, recorder = client
    made = _post(api, tokens["rita"], f"/{CDR_ID}/request", {"title": "Call me back"})
    assert made.status_code == 201, made.text
    ref = made.json()["request"]["ref"]
    noted = _post(api, tokens["rita"], f"/{CDR_ID}/note", {"request": ref, "text": "again"})
    assert noted.status_code == 201, noted.text
    with db.session() as s:
        row = s.get(Cdr, CDR_ID)
        assert row is not None and row.extra is not None
        assert row.extra["flow"] == "front-desk"  # what was there stays
        assert [a["action"] for a in row.extra[CDR_EXTRA_KEY]] == ["request_created", "note_added"]
    keys = [e.routing_key for e in recorder.events]
    assert keys.count("call.action_taken") == 2 and "request.created" in keys


def test_bad_call_actions_are_problems_naming_the_thing(
    client: tuple[TestClient, dict[str, str], Recorder],
) -> None:
    api, tokens, _ = client
    unknown = _post(api, tokens["rita"], "/no-such-call/request", {})
    assert unknown.status_code == 404 and "no-such-call" in unknown.json()["detail"]
    assert unknown.headers["content-type"].startswith("application/problem+json")
    missing = _post(api, tokens["rita"], f"/{CDR_ID}/note", {"request": "SR-4242"})
    assert missing.status_code == 404 and "4242" in missing.json()["detail"]
    ended = _post(api, tokens["rita"], f"/{CDR_ID}/transfer", {"extension": "102"})
    assert ended.status_code == 409 and "has ended" in ended.json()["detail"]
    refused = _post(api, tokens["tom"], f"/{CDR_ID}/request", {})
    assert refused.status_code == 403
    malformed = _post(api, tokens["rita"], f"/{CDR_ID}/transfer", {"extension": "1 0 2"})
    assert malformed.status_code == 422
    listed = api.get("/api/v1/tickets/calls", headers={"Authorization": f"Bearer {tokens['rita']}"})
    assert listed.status_code == 200 and listed.json() == []  # no call engine behind it


@pytest.mark.parametrize(
    ("settings", "mailbox", "via_main", "files"),
    [
        ({}, "102", True, True),
        ({}, "102", False, False),
        ({"voicemail_request_mailboxes": ["500"]}, "500", False, True),
        ({"voicemail_requests": "all"}, "103", False, True),
        ({"voicemail_requests": "off"}, "102", True, False),
    ],
)
def test_which_voicemails_become_requests(
    settings: dict[str, Any], mailbox: str, via_main: bool, files: bool
) -> None:
    assert voicemail_files_request(settings, mailbox, via_main_number=via_main) is files


def test_webhook_retry_setting() -> None:
    assert retry_policy(None).max_attempts == 8
    policy = retry_policy("3,0.2,0.5")
    assert (policy.max_attempts, policy.delay(1), policy.delay(5)) == (
        3,
        timedelta(seconds=0.2),
        timedelta(seconds=0.5),
    )
    for bad in ("0", "x", "3,-1", "3,5,1", "1,2,3,4"):
        with pytest.raises(TicketsConfigError, match="FRONTDESK_WEBHOOK_RETRY"):
            retry_policy(bad)
