"""Service requests on live calls, through a real `frontdesk serve` and real phones:
baresip phones ring and answer, a real WebSocket client gets the screen pop, real HTTP
receivers on 127.0.0.1 get the signed webhooks and the Zammad CTI forms, and an endpoint
that is down is retried, then recorded failed, with nothing lost.

- An outside caller (+1 212 555 0100, a known contact of Globex with an open request) rings
  the office manager: her WebSocket gets ``call.caller_identified`` (contact, company, the
  open request); the service manager, whose phone does not ring, gets no screen pop. She
  answers, opens a request from the call and notes the call on the open request through the
  API (an unknown request number is a problem naming it). The CDR and the requests record
  who did what, when.
- A caller of the main number is not answered and leaves a voicemail in the service
  manager's mailbox: the caller's open request gets a note with the recording's download URL
  (which serves the WAV). A missed call from an unknown number opens a new request.
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
from sqlalchemy import select
from tickets_live_kit import (  # noqa: F401  (*_fixture: the fixtures office, receiver)
    ENV,
    OUTSIDE,
    RETRIES,
    SECRET,
    STRANGER,
    Office,
    actions_of,
    deliveries,
    drain,
    endpoint_ids,
    live_call_ref,
    next_event,
    notes_of,
    office_fixture,
    problem,
    receiver_fixture,
    stored_cdr,
    talk_wav,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from frontdesk.store import repo
from frontdesk.tickets import calls as ticket_calls
from frontdesk.tickets import directory
from frontdesk.tickets.model import ServiceRequest, WebhookDelivery
from frontdesk.tickets.webhooks import verify_signature
from peers import BaresipPhone, pad_silence, silence_wav, speech_wav
from peers.audio import concat_wavs, duration

pytestmark = [pytest.mark.peers, pytest.mark.timeout(240)]


WANTED = {
    "call.started",
    "call.caller_identified",
    "call.answered",
    "request.created",
    "request.note_added",
    "call.action_taken",
    "call.ended",
}


BOTH_DATABASES = pytest.mark.parametrize(
    "office", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@BOTH_DATABASES
def test_screen_pop_answer_time_actions_and_signed_webhooks(
    office: Office, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    rita_phone = office.phone(baresip_phone, "101", answermode="manual")
    caller = office.outside(baresip_phone, OUTSIDE)
    rita_seen: list[dict[str, Any]] = []
    sam_seen: list[dict[str, Any]] = []
    with office.websocket("rita") as rita, office.websocket("sam") as sam:
        caller.dial(f"sip:101@127.0.0.1:{office.fd.sip_port}")
        rita_phone.wait_event("CALL_INCOMING", timeout=10)
        call_ref = _screen_pop(office, rita, rita_seen)
        rita_phone.accept()
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        answered = next_event(rita, "call.answered", rita_seen)["data"]
        assert (answered["call_id"], answered["answering_number"]) == (call_ref, "101")
        new_ref = _act_on_the_call(office, call_ref)
        caller.hangup()
        rita_phone.wait_event("CALL_CLOSED", timeout=10)
        ended = next_event(rita, "call.ended", rita_seen)["data"]
        assert (ended["disposition"], ended["cdr_id"]) == ("answered", call_ref)
        drain(sam, sam_seen)
    assert "call.caller_identified" not in [m["event"] for m in sam_seen]  # not his phone
    assert "call.ended" in [m["event"] for m in sam_seen]  # he may read calls (cdr.read)
    _check_recorded(office, call_ref, new_ref)
    _check_webhooks(office)
    _check_zammad(office, call_ref)
    _check_down_endpoint(office)


def _screen_pop(office: Office, rita: ClientConnection, seen: list[dict[str, Any]]) -> str:
    """The pop reached the office manager: contact, company, open request; its call_ref."""
    pop = next_event(rita, "call.caller_identified", seen)["data"]
    assert pop["user_id"] == office.users["rita"]
    lookup = pop["lookup"]
    assert lookup["number"] == OUTSIDE and lookup["ambiguous"] is False
    assert [c["name"] for c in lookup["contacts"]] == ["Hank Scorpio"]
    assert [c["name"] for c in lookup["companies"]] == ["Globex"]
    assert [r["ref"] for r in lookup["open_requests"]] == [office.open_ref]
    call_ref = str(pop["call_id"])
    started = next(m for m in seen if m["event"] == "call.started")
    assert started["data"]["call_id"] == call_ref and started["data"]["caller"] == OUTSIDE
    return call_ref


def _act_on_the_call(office: Office, call_ref: str) -> str:
    """While the call is live: list it, open a request from it, note it on the open one."""
    calls = f"/api/v1/tickets/calls/{call_ref}"
    live = office.api("rita", "GET", "/api/v1/tickets/calls").json()
    assert [(c["call_ref"], c["state"], c["answered_by"]) for c in live] == [
        (call_ref, "answered", "101")
    ]
    made = office.api(
        "rita", "POST", f"{calls}/request", json={"title": "Server down", "priority": "high"}
    )
    assert made.status_code == 201, made.text
    new_ref = str(made.json()["request"]["ref"])
    assert made.json()["request"]["contact_id"] == office.contact_id and new_ref != office.open_ref
    unknown = office.api("rita", "POST", f"{calls}/note", json={"request": "SR-999"})
    assert "SR-999" in problem(unknown, 404)["detail"]
    noted = office.api(
        "rita", "POST", f"{calls}/note", json={"request": office.open_ref, "text": "asked again"}
    )
    assert noted.status_code == 201, noted.text
    nowhere = office.api(
        "rita", "POST", "/api/v1/tickets/calls/no-such-call/note", json={"request": "SR-1"}
    )
    assert "no-such-call" in problem(nowhere, 404)["detail"]
    assert problem(office.api("sam", "POST", f"{calls}/note", json={}), 422)
    return new_ref


def _check_recorded(office: Office, call_ref: str, new_ref: str) -> None:
    """Who did what, when: on the CDR and on both requests."""
    actor = f"user:{office.users['rita']}"

    def cdr_actions() -> list[dict[str, Any]] | None:
        row = stored_cdr(office, call_ref)
        done = (row.extra or {}).get(ticket_calls.CDR_EXTRA_KEY, [])
        return done if len(done) == 2 and row.ended_at else None

    actions = wait_for("both actions on the CDR", cdr_actions)
    assert [(a["action"], a["actor"], a["request"]) for a in actions] == [
        ("request_created", actor, new_ref),
        ("note_added", actor, office.open_ref),
    ]
    assert all(a["at"] for a in actions)
    note = notes_of(office, office.open_ref)[-1]
    assert (note.kind, note.cdr_id, note.actor) == ("call", call_ref, actor)
    assert "asked again" in note.text
    assert notes_of(office, new_ref)[0].cdr_id == call_ref


def _check_webhooks(office: Office) -> None:
    """Every event reached the helpdesk receiver, each with a valid signature."""

    def hooks() -> list[Any] | None:
        got = [r for r in office.hooks.received if r.path == "/hooks"]
        return got if {r.headers["x-frontdesk-event"] for r in got} >= WANTED else None

    for received in wait_for("the helpdesk webhooks", hooks, timeout=15):
        verify_signature(SECRET, received.headers["x-frontdesk-signature"], received.body)
        envelope = json.loads(received.body)
        assert envelope["event"] == received.headers["x-frontdesk-event"]
        assert envelope["id"] == received.headers["x-frontdesk-event-id"]


def _check_zammad(office: Office, call_ref: str) -> None:
    """newCall, answer, hangup in the form Zammad's generic CTI documents."""

    def cti() -> list[dict[str, list[str]]] | None:
        path = "/api/v1/cti/t0ken"
        forms = [parse_qs(r.body.decode()) for r in office.hooks.received if r.path == path]
        return forms if [f["event"][0] for f in forms] == ["newCall", "answer", "hangup"] else None

    new_call, answer, hangup = wait_for("Zammad newCall/answer/hangup", cti, timeout=15)
    for form in (new_call, answer, hangup):
        parties = (form["from"], form["to"], form["direction"], form["callId"])
        assert parties == (["12125550100"], ["101"], ["in"], [call_ref])
    assert new_call["user[]"] == ["Office Manager"]  # whose phone rings
    assert answer["answeringNumber"] == ["101"] and answer["user[]"] == ["Office Manager"]
    assert hangup["cause"] == ["normalClearing"]


def _check_down_endpoint(office: Office) -> None:
    """The endpoint that is down: retried, then failed; every event it should get logged."""
    ids = endpoint_ids(office)

    def settled() -> list[WebhookDelivery] | None:
        rows = deliveries(office)
        down = [d for d in rows if d.endpoint_id == ids["down"]]
        failed = down and all(d.status == "failed" for d in down)
        return rows if failed and len(down) >= len(WANTED) else None

    rows = wait_for("the down endpoint's deliveries to fail", settled, timeout=30)
    helpdesk = {d.event_id for d in rows if d.endpoint_id == ids["helpdesk"]}
    down = [d for d in rows if d.endpoint_id == ids["down"]]
    assert {d.event_id for d in down} == helpdesk  # nothing lost
    for d in down:
        assert d.attempts == RETRIES and len(d.history) == RETRIES and d.delivered_at is None
        assert f"gave up after {RETRIES} attempts" in (d.error or "")
        assert "ConnectError" in (d.error or "")
    assert all(d.status == "delivered" for d in rows if d.endpoint_id != ids["down"])


def test_bad_tokens_are_refused_with_a_reason(office: Office) -> None:
    base = f"ws://127.0.0.1:{office.fd.http_port}/api/v1/events/ws"
    for url, headers, says in (
        (base, {}, "no token"),
        (base, {"Authorization": "Bearer fdt_not-a-token"}, "unknown, expired or revoked"),
        (f"{base}?token=fdt_nope", {}, "unknown, expired or revoked"),
        (f"{base}?events=call.%7Bx%7D", {}, "is not valid"),
    ):
        with (
            connect(url, additional_headers=headers) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None, url
        assert closed.value.rcvd.code in (4401, 4400) and says in closed.value.rcvd.reason, url
    with connect(f"{base}?token={office.tokens['sam']}&events=request.*") as ws:
        ready = json.loads(ws.recv(timeout=10))
        assert (ready["event"], ready["user_id"], ready["events"]) == (
            "ready",
            office.users["sam"],
            ["request.*"],
        )
        ws.send("ping")
        assert json.loads(ws.recv(timeout=10)) == {"event": "pong"}


@pytest.mark.parametrize(
    ("office", "dial"),
    [
        ("sqlite", "100"),  # the main number
        ("sqlite", "201"),  # a technician: the shield sends the outside caller to the flow
        pytest.param("postgresql", "100", marks=pytest.mark.postgres),
    ],
    indirect=["office"],
)
def test_voicemail_and_missed_call_become_requests(
    office: Office, baresip_phone: Callable[..., BaresipPhone], tmp_path: Path, dial: str
) -> None:
    office.phone(baresip_phone, "101", answermode="manual")  # rings, nobody answers
    greeting = office.render_greeting(tmp_path / "greeting.wav")
    voice = speech_wav(
        tmp_path / "voice.wav",
        "Hello, this is Hank from Globex. The printer "
        "on the second floor is broken again, please call me back.",
    )
    lead = silence_wav(tmp_path / "lead.wav", duration(greeting) + 1.5)
    audio = concat_wavs(
        tmp_path / "hank.wav", lead, pad_silence(voice, tmp_path / "t.wav", after=40)
    )
    hank = office.outside(baresip_phone, OUTSIDE, audio_file=audio)
    seen: list[dict[str, Any]] = []
    with office.websocket("sam", "?events=request.*") as sam:
        hank.dial(f"sip:{dial}@127.0.0.1:{office.fd.sip_port}")
        hank.wait_event("CALL_ESTABLISHED", timeout=20)  # after 101 rang 5 s: voicemail
        time.sleep(duration(greeting) + 1.5 + duration(voice) + 1.0)
        hank.send_dtmf("#")
        hank.wait_event("CALL_CLOSED", timeout=15)
        added = next_event(sam, "request.note_added", seen, timeout=15)["data"]
    assert (added["request_ref"], added["kind"]) == (office.open_ref, "voicemail")
    note = notes_of(office, office.open_ref)[-1]  # Hank's open request got the voicemail
    assert (note.kind, note.actor) == ("voicemail", "system") and "for 102" in note.text
    audio_url = note.attachment_path or ""
    assert audio_url.startswith("/api/v1/voicemail/messages/") and audio_url.endswith("/audio")
    wav = office.api("sam", "GET", audio_url)
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF", wav.text[:300]
    filed = wait_for("voicemail_filed on the CDR", lambda: actions_of(office, note.cdr_id))
    assert [(a["action"], a["request"], a["target"]) for a in filed] == [
        ("voicemail_filed", office.open_ref, "102")
    ]
    _missed_call(office, baresip_phone)


def _missed_call(office: Office, baresip_phone: Callable[..., BaresipPhone]) -> None:
    """An unknown caller gives up while 101 rings: a new request for the number."""
    stranger = office.outside(baresip_phone, STRANGER)
    stranger.dial(f"sip:101@127.0.0.1:{office.fd.sip_port}")
    time.sleep(1.5)
    stranger.hangup()
    stranger.wait_event("CALL_CLOSED", timeout=10)

    def filed() -> ServiceRequest | None:
        with database(office.fd) as db, db.session() as s:
            row = s.scalar(select(ServiceRequest).where(ServiceRequest.caller_number == STRANGER))
            if row is not None:
                s.expunge(row)
            return row

    request = wait_for("the missed call's request", filed)
    assert request.title.startswith("Missed call from") and request.contact_id is None
    note = notes_of(office, f"SR-{request.number}")[0]
    assert note.kind == "missed_call" and note.cdr_id is not None
    cdr = stored_cdr(office, note.cdr_id)
    assert cdr.disposition == "cancelled" and cdr.caller == STRANGER
    actions = wait_for("missed_call_filed on the CDR", lambda: actions_of(office, cdr.id))
    assert [(a["action"], a["request"]) for a in actions] == [
        ("missed_call_filed", f"SR-{request.number}")
    ]


def test_transfer_and_send_to_voicemail_act_on_the_live_call(
    office: Office, baresip_phone: Callable[..., BaresipPhone], tmp_path: Path
) -> None:
    rita_phone = office.phone(baresip_phone, "101", answermode="manual")
    sam_phone = office.phone(baresip_phone, "102", answermode="auto")
    talk = talk_wav(tmp_path)
    hank = office.outside(baresip_phone, OUTSIDE, audio_file=talk)
    call_ref = office.rita_answers(hank, rita_phone)
    calls = f"/api/v1/tickets/calls/{call_ref}"
    nowhere = office.api("rita", "POST", f"{calls}/transfer", json={"extension": "999"})
    assert "999" in problem(nowhere, 422)["detail"]
    moved = office.api("rita", "POST", f"{calls}/transfer", json={"request": office.open_ref})
    assert moved.status_code == 200, moved.text
    assert moved.json()["outcome"]["status"] == "connected"
    sam_phone.wait_event("CALL_ESTABLISHED", timeout=15)  # the service manager has the caller
    rita_phone.wait_event("CALL_CLOSED", timeout=15)  # and the receptionist is free
    hank.hangup()
    sam_phone.wait_event("CALL_CLOSED", timeout=10)
    again = office.api("rita", "POST", f"{calls}/transfer", json={})
    assert "ended" in problem(again, 409)["detail"]
    actions = wait_for("the transfer on the CDR", lambda: actions_of(office, call_ref))
    rita = f"user:{office.users['rita']}"
    assert [(a["action"], a["actor"], a["target"], a["request"]) for a in actions] == [
        ("transferred", rita, "102", office.open_ref)
    ]
    note = notes_of(office, office.open_ref)[-1]
    assert (note.kind, note.cdr_id) == ("call", call_ref) and "transferred to 102" in note.text
    _send_to_voicemail(office, baresip_phone, rita_phone, talk, tmp_path)


def _send_to_voicemail(
    office: Office,
    baresip_phone: Callable[..., BaresipPhone],
    rita_phone: BaresipPhone,
    talk: Path,
    tmp_path: Path,
) -> None:
    """An unknown caller sent to the service manager's voicemail: a new request with the
    message attached."""
    greeting = office.render_greeting(tmp_path / "greeting.wav")
    stranger = office.outside(baresip_phone, STRANGER, audio_file=talk)
    call_ref = office.rita_answers(stranger, rita_phone)
    sent = office.api("rita", "POST", f"/api/v1/tickets/calls/{call_ref}/voicemail", json={})
    assert sent.status_code == 200, sent.text
    assert sent.json()["outcome"]["status"] == "voicemail"
    rita_phone.wait_event("CALL_CLOSED", timeout=15)
    time.sleep(duration(greeting) + 6.0)  # the greeting, then the caller talks
    stranger.send_dtmf("#")
    stranger.wait_event("CALL_CLOSED", timeout=15)
    done = wait_for(
        "sent_to_voicemail and voicemail_filed on the CDR",
        lambda: (a := actions_of(office, call_ref)) and len(a) == 2 and a,
        timeout=15,
    )
    assert [(a["action"], a["target"]) for a in done] == [
        ("sent_to_voicemail", "102"),
        ("voicemail_filed", "102"),
    ]
    note = notes_of(office, done[1]["request"])[0]
    assert note.kind == "voicemail" and (note.attachment_path or "").endswith("/audio")


AMBIGUOUS = "+14155550123"


def test_ambiguous_caller_is_reported_not_guessed(
    office: Office, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    """A number shared by contacts of two companies: the pop says so, and opening a request
    from the call asks which contact is meant (a problem naming the candidates)."""
    with database(office.fd) as db, db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        ids = []
        for company, person in (("Initech", "Bill Lumbergh"), ("Initrode", "Bill Lumbergh")):
            firm = directory.create_company(s, tenant.id, company)
            ids.append(
                directory.create_contact(
                    s, tenant.id, person, company_ids=[firm.id], numbers=[AMBIGUOUS]
                ).id
            )
    rita_phone = office.phone(baresip_phone, "101", answermode="manual")
    caller = office.outside(baresip_phone, AMBIGUOUS)
    seen: list[dict[str, Any]] = []
    with office.websocket("rita", "?events=call.caller_identified") as rita:
        caller.dial(f"sip:101@127.0.0.1:{office.fd.sip_port}")
        pop = next_event(rita, "call.caller_identified", seen)["data"]
    lookup = pop["lookup"]
    assert lookup["ambiguous"] is True and "Bill Lumbergh" in (lookup["ambiguity"] or "")
    assert sorted(c["id"] for c in lookup["contacts"]) == sorted(ids)
    assert [m["event"] for m in seen] == ["call.caller_identified"]  # ?events= filters
    rita_phone.accept()
    caller.wait_event("CALL_ESTABLISHED", timeout=10)
    path = f"/api/v1/tickets/calls/{pop['call_id']}/request"
    which = problem(office.api("rita", "POST", path, json={}), 409)
    assert "contact_id" in which["fix"] and str(ids[0]) in which["detail"]
    made = office.api("rita", "POST", path, json={"contact_id": ids[1]})
    assert made.status_code == 201 and made.json()["request"]["contact_id"] == ids[1]
    caller.hangup()
    rita_phone.wait_event("CALL_CLOSED", timeout=10)


def test_webhook_deliveries_survive_a_crash(office: Office) -> None:
    """A request made through the REST API reaches a WebSocket at once; its webhook is
    refused (503), the server is killed (-9) before the retry, and after the restart the
    same event is delivered, signed, from the delivery log: nothing is lost."""
    office.hooks.statuses[:] = [503] * 100
    office.fd.stop()
    office.fd.start(extra_env={**ENV, "FRONTDESK_WEBHOOK_RETRY": "6,2,2"})
    seen: list[dict[str, Any]] = []
    with office.websocket("sam", "?events=request.*") as sam:
        made = office.api("rita", "POST", "/api/v1/tickets/requests", json={"title": "VPN down"})
        assert made.status_code == 201, made.text
        created = next_event(sam, "request.created", seen)
    helpdesk = endpoint_ids(office)["helpdesk"]

    def refused_once() -> WebhookDelivery | None:
        rows = [d for d in deliveries(office) if d.endpoint_id == helpdesk]
        return rows[0] if rows and rows[0].attempts == 1 else None

    first = wait_for("the first (refused) attempt", refused_once)
    assert first.event_id == created["id"] and first.status == "pending"
    assert first.history[0]["response_code"] == 503
    office.fd.kill9()
    office.hooks.statuses.clear()  # the helpdesk is back
    office.fd.start(extra_env={**ENV, "FRONTDESK_WEBHOOK_RETRY": "6,2,2"})

    def delivered() -> WebhookDelivery | None:
        rows = [d for d in deliveries(office) if d.id == first.id]
        return rows[0] if rows and rows[0].status == "delivered" else None

    done = wait_for("the delivery after the restart", delivered, timeout=20)
    assert done.attempts == 2 and [h["response_code"] for h in done.history] == [503, 200]
    arrived = [
        r for r in office.hooks.received if r.headers.get("x-frontdesk-event-id") == first.event_id
    ]
    assert len(arrived) == 2  # at least once: the receiver de-duplicates on the event id
    for received in arrived:
        verify_signature(SECRET, received.headers["x-frontdesk-signature"], received.body)
    assert json.loads(arrived[1].body)["data"]["request"]["title"] == "VPN down"
