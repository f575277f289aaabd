"""Live-call loose ends of service requests, through a real `frontdesk serve`, real baresip
phones, a real WebSocket client and a real local HTTP receiver (webhooks and Zammad CTI):

- a caller whom only Frontdesk's voicemail answered, who hangs up without leaving a
  message: ``call.answered`` by ``frontdesk`` (Zammad: an ``answer`` by the user
  ``voicemail``, which its caller log keeps open), and a missed-call request;
- a transfer from the office manager to the service manager: ``call.transferred`` (from 101
  to 102, by whom), Zammad a second ``answer`` naming the new user, and the CDR's final
  answerer 102 with both answerers in ``extra.answerers``;
- ownership events on the WebSocket: the informed office manager is told of an extension
  change, the service manager (neither informed nor an audit reader) is not, a client
  filtering ``call.*`` is not; an ``audit.read`` granted while connected applies without a
  reconnect, and a token revoked while connected closes the socket (4401) saying so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from integration_kit import database, wait_for
from sqlalchemy import select, update
from tickets_live_kit import (  # noqa: F401  (*_fixture: the fixtures office, receiver)
    OUTSIDE,
    STRANGER,
    Office,
    actions_of,
    cli,
    drain,
    live_call_ref,
    next_event,
    notes_of,
    office_fixture,
    receiver_fixture,
    stored_cdr,
    talk_wav,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from frontdesk.org.credentials import new_token
from frontdesk.org.model import ApiToken, PermissionOverride, RoleAssignment
from frontdesk.store import repo
from frontdesk.store.models import User, utcnow
from frontdesk.tickets.model import ServiceRequest
from peers import BaresipPhone

pytestmark = [pytest.mark.peers, pytest.mark.timeout(240)]

CTI = "/api/v1/cti/t0ken"


def _cti_forms(office: Office, call_ref: str) -> list[dict[str, list[str]]]:
    forms = [parse_qs(r.body.decode()) for r in office.hooks.received if r.path == CTI]
    return [f for f in forms if f.get("callId") == [call_ref]]


def _hook(office: Office, event: str, call_ref: str) -> list[dict[str, Any]]:
    bodies = [json.loads(r.body) for r in office.hooks.received if r.path == "/hooks"]
    return [b for b in bodies if b["event"] == event and b["data"].get("call_id") == call_ref]


@pytest.mark.parametrize(
    "office", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_hang_up_in_voicemail_is_answered_by_voicemail_and_missed(
    office: Office, baresip_phone: Callable[..., BaresipPhone], tmp_path: Path
) -> None:
    office.phone(baresip_phone, "101", answermode="manual")  # rings 5 s, nobody answers
    stranger = office.outside(baresip_phone, STRANGER)
    seen: list[dict[str, Any]] = []
    with office.websocket("rita", "?events=call.*") as rita:
        stranger.dial(f"sip:100@127.0.0.1:{office.fd.sip_port}")
        stranger.wait_event("CALL_ESTABLISHED", timeout=20)  # the flow's voicemail answers
        answered = next_event(rita, "call.answered", seen)["data"]
        time.sleep(1.0)  # in the greeting
        stranger.hangup()
        stranger.wait_event("CALL_CLOSED", timeout=10)
        ended = next_event(rita, "call.ended", seen)["data"]
    call_ref = answered["call_id"]
    assert (answered["answerer"], answered["answered_by"], answered["answering_number"]) == (
        "frontdesk",
        "voicemail",
        None,
    )
    assert (ended["call_id"], ended["disposition"], ended["answered_by"]) == (
        call_ref,
        "answered",
        None,
    )
    forms = wait_for(
        "Zammad newCall/answer/hangup",
        lambda: (f := _cti_forms(office, call_ref)) and len(f) == 3 and f,
        timeout=15,
    )
    assert [f["event"][0] for f in forms] == ["newCall", "answer", "hangup"]
    assert forms[1]["user[]"] == ["voicemail"] and "answeringNumber" not in forms[1]
    assert wait_for("call.answered webhook", lambda: _hook(office, "call.answered", call_ref))

    def filed() -> ServiceRequest | None:
        with database(office.fd) as db, db.session() as s:
            row = s.scalar(select(ServiceRequest).where(ServiceRequest.caller_number == STRANGER))
            if row is not None:
                s.expunge(row)
            return row

    request = wait_for("the missed call's request", filed, timeout=15)
    note = notes_of(office, f"SR-{request.number}")[0]
    assert (note.kind, note.cdr_id) == ("missed_call", call_ref)
    actions = wait_for("missed_call_filed on the CDR", lambda: actions_of(office, call_ref))
    assert [a["action"] for a in actions] == ["missed_call_filed"]
    assert stored_cdr(office, call_ref).callee_answered_by == "frontdesk"


def test_transfer_is_an_event_and_the_cdr_names_the_final_answerer(
    office: Office, baresip_phone: Callable[..., BaresipPhone], tmp_path: Path
) -> None:
    rita_phone = office.phone(baresip_phone, "101", answermode="manual")
    sam_phone = office.phone(baresip_phone, "102", answermode="auto")
    hank = office.outside(baresip_phone, OUTSIDE, audio_file=talk_wav(tmp_path))
    seen: list[dict[str, Any]] = []
    with office.websocket("sam", "?events=call.answered,call.transferred") as sam:
        call_ref = office.rita_answers(hank, rita_phone)
        moved = office.api(
            "rita", "POST", f"/api/v1/tickets/calls/{call_ref}/transfer", json={"extension": "102"}
        )
        assert moved.status_code == 200, moved.text
        sam_phone.wait_event("CALL_ESTABLISHED", timeout=15)
        rita_phone.wait_event("CALL_CLOSED", timeout=15)
        transferred = next_event(sam, "call.transferred", seen)["data"]
        hank.hangup()
        sam_phone.wait_event("CALL_CLOSED", timeout=10)
    assert [m["event"] for m in seen] == ["call.answered", "call.transferred"]
    assert transferred["call_id"] == call_ref
    assert (transferred["from_number"], transferred["to_number"]) == ("101", "102")
    assert (transferred["from_answered_by"], transferred["to_answered_by"]) == (
        "Office Manager",
        "Service Manager",
    )
    assert transferred["actor"] == f"user:{office.users['rita']}"
    forms = wait_for(
        "Zammad newCall/answer/answer/hangup",
        lambda: (f := _cti_forms(office, call_ref)) and len(f) == 4 and f,
        timeout=15,
    )
    assert [f["event"][0] for f in forms] == ["newCall", "answer", "answer", "hangup"]
    assert (forms[1]["answeringNumber"], forms[2]["answeringNumber"]) == (["101"], ["102"])
    assert forms[2]["user[]"] == ["Service Manager"]
    assert wait_for("call.transferred webhook", lambda: _hook(office, "call.transferred", call_ref))
    cdr = wait_for(
        "the ended CDR",
        lambda: (row := stored_cdr(office, call_ref)).ended_at is not None and row,
    )
    assert cdr.callee_answered_by == "102"
    assert (cdr.extra or {}).get("answerers") == ["101", "102"]


def _grant(office: Office, role: str, permission: str) -> None:
    with database(office.fd) as db, db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        s.add(
            PermissionOverride(tenant_id=tenant.id, role=role, permission=permission, allowed=True)
        )


def _phone_manager(office: Office) -> None:
    """Pat, the Phone Manager: owns the business domain (approves, changes directly)."""
    with database(office.fd) as db, db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        pat = User(tenant_id=tenant.id, username="pat", display_name="Pat Phone-Manager")
        s.add(pat)
        s.flush()
        s.add(RoleAssignment(tenant_id=tenant.id, user_id=pat.id, role="phone_manager"))
        token, digest = new_token()
        s.add(ApiToken(tenant_id=tenant.id, user_id=pat.id, name="t", kind="api",
                       token_hash=digest))
        office.users["pat"], office.tokens["pat"] = pat.id, token


def _rename(office: Office, who: str, name: str, status: int = 200) -> dict[str, Any]:
    changed = office.api(who, "PATCH", "/api/v1/extensions/203", json={"display_name": name})
    assert changed.status_code == status, changed.text
    body: dict[str, Any] = changed.json()
    return body


def _org_events(seen: list[dict[str, Any]]) -> list[str]:
    return [m["event"] for m in seen if m["event"].startswith("org.")]


def test_ownership_events_reach_the_entitled_and_access_is_rechecked_live(
    office: Office,
) -> None:
    rita_id = office.users["rita"]
    _phone_manager(office)
    _grant(office, "service_manager", "extension.update")  # sam may ask to rename one
    seen: dict[str, list[dict[str, Any]]] = {"rita": [], "sam": [], "pat": [], "calls": []}
    with (
        office.websocket("rita", "?events=org.*") as rita,
        office.websocket("sam") as sam,
        office.websocket("pat", "?events=org.change_request.*") as pat,
        office.websocket("rita", "?events=call.*") as calls_only,
    ):
        asked = _rename(office, "sam", "Technician Three (asked)", status=202)  # a request
        request = next_event(pat, "org.change_request.created", seen["pat"])["data"]
        assert request["change_request_id"] == asked["id"]
        assert office.users["pat"] in request["approver_user_ids"]
        _rename(office, "pat", "Technician Three (on call)")  # the owner changes it directly
        told = next_event(rita, f"org.informed.user.{rita_id}", seen["rita"])["data"]
        assert (told["user_id"], told["resource_type"], told["resource_key"]) == (
            rita_id,
            "extension",
            "203",
        )
        assert "org.extension.updated" not in _org_events(seen["rita"])  # no audit.read
        _grant(office, "office_manager", "audit.read")  # while she is connected
        _until_audit_event(office, rita, seen["rita"])
        drain(sam, seen["sam"])
        drain(calls_only, seen["calls"])
        drain(pat, seen["pat"])
        assert _org_events(seen["sam"]) == []  # not informed, not an approver or auditor
        assert _org_events(seen["calls"]) == []  # her filter: call.* only
        assert set(_org_events(seen["pat"])) == {"org.change_request.created"}  # her filter
        _revoke(office, "rita")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                rita.recv(timeout=15)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401 and "revoked" in closed.value.rcvd.reason


def _until_audit_event(office: Office, rita: ClientConnection, seen: list[dict[str, Any]]) -> None:
    """Rename again until the grant applies (the socket re-checks access every few
    seconds): then she gets ``org.extension.updated`` on the same connection."""
    deadline = time.monotonic() + 30
    for attempt in range(1, 100):
        _rename(office, "pat", f"Technician Three ({attempt})")
        drain(rita, seen, quiet=1.0)
        applied = [m for m in seen if m["event"] == "org.extension.updated"]
        if applied:
            assert applied[-1]["data"]["resource_key"] == "203"
            assert applied[-1]["tenant_id"] == stored_tenant_id(office)
            return
        if time.monotonic() > deadline:
            break
    pytest.fail(f"audit.read never applied without a reconnect; got {_org_events(seen)}")


def stored_tenant_id(office: Office) -> int:
    with database(office.fd) as db, db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        return int(tenant.id)


def _revoke(office: Office, who: str) -> None:
    with database(office.fd) as db, db.session() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.user_id == office.users[who])
            .values(revoked_at=utcnow())
        )


PROMPT_FLOW = """\
name: front-desk
title: a prompt by Frontdesk, then the service manager
timezone: UTC
messages:
  welcome: "Welcome to Demo Services."
nodes:
  start: {type: start, next: welcome}
  welcome: {type: play, message: welcome, next: ring-sm}
  ring-sm: {type: ring, targets: ["102"], timeout: 10, no_answer: vm, busy: vm}
  vm: {type: voicemail, mailbox: "102"}
"""


def _publish(office: Office, flow: str, tmp_path: Path) -> None:
    """Publish ``flow`` on the running server and wait until it has reloaded it."""
    reloads = office.fd.log_tail(100_000).count("reloaded tenants and extensions")
    (tmp_path / "prompt-flow.yaml").write_text(flow)
    cli(office.fd, "flow", "publish", "--file", str(tmp_path / "prompt-flow.yaml"), "--actor", "test")
    wait_for(
        "the server to reload the flow",
        lambda: office.fd.log_tail(100_000).count("reloaded tenants and extensions") > reloads,
        timeout=20,
    )


def test_a_prompt_put_through_to_a_person_is_a_transfer_not_a_missed_call(
    office: Office, baresip_phone: Callable[..., BaresipPhone], tmp_path: Path
) -> None:
    _publish(office, PROMPT_FLOW, tmp_path)
    sam_phone = office.phone(baresip_phone, "102", answermode="auto")
    stranger = office.outside(baresip_phone, STRANGER)
    seen: list[dict[str, Any]] = []
    with office.websocket("sam", "?events=call.answered,call.transferred,call.ended") as sam:
        stranger.dial(f"sip:100@127.0.0.1:{office.fd.sip_port}")
        stranger.wait_event("CALL_ESTABLISHED", timeout=15)  # our prompt answers
        sam_phone.wait_event("CALL_ESTABLISHED", timeout=20)  # then 102 has the caller
        transferred = next_event(sam, "call.transferred", seen)["data"]
        stranger.hangup()
        sam_phone.wait_event("CALL_CLOSED", timeout=10)
        ended = next_event(sam, "call.ended", seen)["data"]
    call_ref = transferred["call_id"]
    assert [m["event"] for m in seen] == ["call.answered", "call.transferred", "call.ended"]
    assert seen[0]["data"]["answerer"] == "frontdesk"
    assert (transferred["from_answerer"], transferred["from_answered_by"]) == (
        "frontdesk",
        "voicemail",
    )
    assert (transferred["to_number"], transferred["actor"]) == ("102", None)  # the flow
    assert (ended["answering_number"], ended["disposition"]) == ("102", "answered")
    forms = wait_for(
        "Zammad newCall/answer/answer/hangup",
        lambda: (f := _cti_forms(office, call_ref)) and len(f) == 4 and f,
        timeout=15,
    )
    assert [(f["event"][0], f.get("user[]")) for f in forms[1:3]] == [
        ("answer", ["voicemail"]),
        ("answer", ["Service Manager"]),
    ]
    cdr = wait_for(
        "the ended CDR",
        lambda: (row := stored_cdr(office, call_ref)).ended_at is not None and row,
    )
    assert cdr.callee_answered_by == "102"
    assert (cdr.extra or {}).get("answerers") == ["frontdesk", "102"]
    time.sleep(2.0)  # a missed-call filing would have been queued right after the end
    with database(office.fd) as db, db.session() as s:
        filed = s.scalar(select(ServiceRequest).where(ServiceRequest.caller_number == STRANGER))
    assert filed is None  # a person took the call: not missed
