"""Voicemail through the media endpoint with soft phones (SIP in memory, RTP on loopback, a
real SQLite database): deposit, silence, maximum length, retrieval with PIN and keypad,
message-waiting (SUBSCRIBE/NOTIFY and unsolicited NOTIFY), greetings by phone under the
tenant's policy."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_kit import DOMAIN, Rig, SoftPhone, configure
from sqlalchemy import select

from frontdesk.cli import create_demo
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import Greeting, VoicemailMessage, VoicemailSettings
from frontdesk.media.rtp import encode_frames
from frontdesk.media.wav import read_pcm
from frontdesk.org import audit
from frontdesk.org.errors import NotAllowed
from frontdesk.org.events import ChangeApplied, Recorder, StakeholderInformed
from frontdesk.org.events import EventBus as OrgEventBus
from frontdesk.org.model import AuditEntry
from frontdesk.org.service import Change
from frontdesk.pbx.directory import ExtensionInfo
from frontdesk.pbx.flows import TenantRouting
from frontdesk.pbx.location import Binding
from frontdesk.pbx.voicemail import MailboxView, VoicemailService
from frontdesk.pbx.voicemail_calls import record_personal_greeting
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.model import FlowDocument
from frontdesk.sip.message import Request, Response
from frontdesk.sip.peer import Peer
from frontdesk.store.db import Database, sqlite_url
from frontdesk.store.models import User
from peers.audio import correlation_curve, speech_wav

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox"
    ),
]
NUMBERS = {"101": "Office Manager", "102": "Service Manager", "103": "Service Coordinator"}


def pcm_array(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def similarity(heard: bytes, reference: bytes) -> float:
    curve = correlation_curve(pcm_array(heard), pcm_array(reference))
    return float(np.max(curve))


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("voice")
    return read_pcm(
        speech_wav(
            folder / "v.wav",
            "Hello, this is Carol from Acme. Please call me back about the broken printer.",
        )
    )


class Box:
    """A database with the demo tenant, its mailbox 102 set to PIN 1234 (escalating to 102),
    and a service on a rig."""

    def __init__(self, rig: Rig, data: Path, standard: bool, removed: tuple[str, ...]) -> None:
        self.data = data
        self.db = Database(sqlite_url(data))
        self.db.migrate()
        create_demo(self.db)
        settings: dict[str, Any] = {"variables": {"service_manager_extension": "102"}}
        if not standard:
            settings["greeting_template"] = "Voicemail of {name}."
        configure(
            self.db,
            Change("mailbox", "update", "102", {"pin": "1234", "escalate_to": "102"}),
            Change("voicemail", "update", "settings", settings),
            *(Change("mailbox", "delete", number) for number in removed),
        )
        self.rig = rig
        #: the ownership event bus the server would hand over (the API's), and what it got
        self.org_bus, self.org_events = OrgEventBus(), Recorder()
        self.org_bus.subscribe(self.org_events)
        self.service = VoicemailService(self.db, data, rig.endpoint,
                                        org_bus=lambda: self.org_bus)
        rig.endpoint.services.append(self.service)

    def messages(self) -> list[VoicemailMessage]:
        with self.db.session() as s:
            return list(s.query(VoicemailMessage))

    def greeting_pcm(self) -> bytes:
        with self.db.session() as s:
            box = store.require_mailbox(s, 1, "102")
            choice = store.active_greeting(s, self.data, box)
        return read_pcm(choice.path or self.service.prompts.render(choice.text or ""))


def run(tmp_path: Path, test: Callable[[Box], Awaitable[None]], standard: bool = False,
        removed: tuple[str, ...] = ()) -> None:
    """``standard``: the tenant's default greeting template (long); else a short one;
    ``removed``: the demo's mailboxes to delete before the service starts."""

    async def main() -> None:
        rig = Rig(NUMBERS)
        box = Box(rig, tmp_path / "data", standard, removed)
        await box.service.start()
        try:
            await test(box)
        finally:
            await box.service.close()
            await rig.close()

    asyncio.run(main())


async def leave_message(box: Box, phone: SoftPhone, pcm: bytes, end: str = "#") -> None:
    """Call *98102, wait for the greeting and the tone, speak, then '#' or hang up."""
    await phone.connect("*98102")
    greeting_seconds = len(box.greeting_pcm()) / 16000
    await asyncio.sleep(greeting_seconds + 0.8)  # greeting + beep
    assert phone.stream is not None
    done = phone.stream.play(encode_frames(pcm, "PCMU"))
    await asyncio.wait_for(done, len(pcm) / 16000 + 2)
    await asyncio.sleep(0.2)
    if end == "#":
        phone.stream.send_dtmf("#")
    else:
        phone.hangup()


def test_a_caller_hears_the_greeting_and_leaves_a_message(tmp_path: Path, voice: bytes) -> None:
    async def test(box: Box) -> None:
        phone = SoftPhone(box.rig, "101", 7001)
        await leave_message(box, phone, voice)
        bye = (await phone.wait_for(lambda: phone.requests("BYE"), 15.0))[0]
        phone.answer_request(bye)
        await phone.close()
        assert similarity(bytes(phone.heard), box.greeting_pcm()) >= 0.9
        [message] = box.messages()
        assert (message.caller, message.status) == ("101", "new")
        stored = read_pcm(box.data / message.audio_path)
        assert similarity(stored, voice) >= 0.9
        assert box.service.counts_for(1, "102") == (1, 0)

    run(tmp_path, test, standard=True)


def test_silence_is_not_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def test(box: Box) -> None:
        phone = SoftPhone(box.rig, "101", 7002)
        await leave_message(box, phone, b"\x00\x00" * 8000, end="hangup")
        await phone.wait_for(lambda: not box.rig.endpoint.by_invite, 5.0)
        await phone.close()
        assert box.messages() == []
        assert not list((box.data / "voicemail").rglob("*.wav*"))

    with caplog.at_level(logging.INFO):
        run(tmp_path, test)
    assert "nothing stored for mailbox 102 from 101" in caplog.text


def test_a_message_stops_at_the_maximum_length(
    tmp_path: Path, voice: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def test(box: Box) -> None:
        with box.db.session() as s:
            s.query(VoicemailSettings).update({"max_message_seconds": 2})
        phone = SoftPhone(box.rig, "101", 7003)
        await leave_message(box, phone, voice + voice, end="none")
        bye = (await phone.wait_for(lambda: phone.requests("BYE"), 15.0))[0]
        phone.answer_request(bye)
        await phone.close()
        [message] = box.messages()
        assert 1.9 <= message.duration <= 2.01

    with caplog.at_level(logging.INFO):
        run(tmp_path, test)
    assert "ended by max-length" in caplog.text


def subscribe(phone: SoftPhone, target: str = "*97", expires: int = 600) -> Request:
    raw = (
        f"SUBSCRIBE sip:{target}@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{phone.peer.port};branch=z9hG4bKsub{expires}{target};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{phone.number}@{DOMAIN}>;tag=sub{phone.number}\r\n"
        f"To: <sip:{target}@{DOMAIN}>\r\nCall-ID: sub-{phone.number}-{target}\r\n"
        f"CSeq: 1 SUBSCRIBE\r\nContact: <sip:{phone.number}@127.0.0.1:{phone.peer.port}>\r\n"
        f"Event: message-summary\r\nAccept: application/simple-message-summary\r\n"
        f"Expires: {expires}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    phone.rig.send(raw, phone.peer)
    return raw  # type: ignore[return-value]


def notifies(phone: SoftPhone) -> list[Request]:
    return phone.requests("NOTIFY")


def test_message_waiting_follows_deposit_and_retrieval(tmp_path: Path, voice: bytes) -> None:
    async def test(box: Box) -> None:
        owner = SoftPhone(box.rig, "102", 7010)
        subscribe(owner)
        ok = await owner.wait_for(
            lambda: [
                m
                for m in owner.messages
                if isinstance(m, Response) and m.cseq.method == "SUBSCRIBE"
            ]
        )
        assert ok[0].status == 200 and ok[0].headers.get("Expires") == "600"
        first = (await owner.wait_for(lambda: notifies(owner)))[0]
        assert b"Messages-Waiting: no" in first.body and b"Voice-Message: 0/0" in first.body
        assert (first.headers.get("Subscription-State") or "").startswith("active;expires=")
        owner.answer_request(first)

        caller = SoftPhone(box.rig, "101", 7011)
        await leave_message(box, caller, voice)
        lit = (await owner.wait_for(lambda: notifies(owner)[1:], 15.0))[0]
        assert b"Messages-Waiting: yes" in lit.body and b"Voice-Message: 1/0 (0/0)" in lit.body
        owner.answer_request(lit)
        await caller.close()

        await owner.connect("*97")
        assert owner.stream is not None
        await asyncio.sleep(1.0)
        owner.stream.send_dtmf("1234#")
        await asyncio.sleep(1.5)
        owner.stream.send_dtmf("1")  # listen: "Message 1, from 1 0 1." then the message
        await asyncio.sleep(5.0)
        owner.stream.send_dtmf("9")  # save (interrupts the message)
        dark = (await owner.wait_for(lambda: notifies(owner)[2:], 15.0))[0]
        assert b"Messages-Waiting: no" in dark.body and b"Voice-Message: 0/1" in dark.body
        owner.answer_request(dark)
        owner.hangup()
        await owner.close()
        [message] = box.messages()
        assert (message.status, message.heard_by) == ("saved", "102")
        assert similarity(bytes(owner.heard), voice[:16000]) >= 0.9  # heard the message

    run(tmp_path, test)


def test_an_unsubscribed_registered_phone_gets_an_unsolicited_notify(
    tmp_path: Path, voice: bytes
) -> None:
    async def test(box: Box) -> None:
        owner = SoftPhone(box.rig, "102", 7020)
        box.rig.location.save(
            Binding(
                1, "102", "sip:102@127.0.0.1:7020", owner.peer, box.rig.now() + 300, "reg-102", 1
            ),
            5,
        )
        caller = SoftPhone(box.rig, "101", 7021)
        await leave_message(box, caller, voice)
        notify = (await owner.wait_for(lambda: notifies(owner), 15.0))[0]
        assert notify.to.tag is None and notify.headers.get("Event") == "message-summary"
        assert b"Voice-Message: 1/0" in notify.body
        await caller.close()
        await owner.close()

    run(tmp_path, test)


def test_subscribe_rules(tmp_path: Path) -> None:
    async def test(box: Box) -> None:
        phone, owner = SoftPhone(box.rig, "101", 7030), SoftPhone(box.rig, "102", 7031)
        subscribe(phone, "102")  # someone else's mailbox
        subscribe(owner, "*97", expires=10)  # too short
        subscribe(phone, "103", expires=600)  # no such mailbox

        def answers() -> list[int]:
            return [m.status for p in (phone, owner) for m in p.messages if isinstance(m, Response)]

        await phone.wait_for(lambda: len(answers()) == 3)
        assert answers() == [403, 404, 423]
        too_short = next(m for m in owner.messages if isinstance(m, Response))
        assert too_short.headers.get("Min-Expires") == "60"

    run(tmp_path, test, removed=("103",))  # extension 103 without a mailbox


def test_three_wrong_pins_hang_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def test(box: Box) -> None:
        owner = SoftPhone(box.rig, "102", 7040)
        await owner.connect("*97")
        assert owner.stream is not None
        owner.stream.play(encode_frames(b"\x01\x00" * 8000 * 60, "PCMU"))  # keep RTP flowing
        for _ in range(3):
            await asyncio.sleep(1.0)
            owner.stream.send_dtmf("9999#")
            await asyncio.sleep(2.0)
        bye = (await owner.wait_for(lambda: owner.requests("BYE"), 20.0))[0]
        owner.answer_request(bye)
        await owner.close()

    with caplog.at_level(logging.WARNING):
        run(tmp_path, test)
    assert "three wrong PINs for mailbox 102 from 102" in caplog.text


def test_a_greeting_recorded_by_phone_waits_for_approval(tmp_path: Path, voice: bytes) -> None:
    """... and, like a change through the API or CLI, is announced on the ownership event
    bus once stored: the change itself, and the Phone Manager (101) told about it."""

    async def test(box: Box) -> None:
        configure(box.db, Change("role_assignment", "create", None,
                                 {"user": "101", "role": "phone_manager"}))
        owner = SoftPhone(box.rig, "102", 7050)
        await owner.connect("*97")
        assert owner.stream is not None
        await asyncio.sleep(1.0)
        owner.stream.send_dtmf("1234#")
        await asyncio.sleep(1.5)
        owner.stream.send_dtmf("5")
        await asyncio.sleep(4.5)  # "record your greeting after the tone" + tone
        await asyncio.wait_for(owner.stream.play(encode_frames(voice, "PCMU")), 10)
        owner.stream.send_dtmf("#")
        await asyncio.sleep(1.0)
        owner.stream.send_dtmf("1")  # keep
        await owner.wait_for(lambda: _greetings(box), 10.0)
        # the row is visible once the change committed (in a worker thread); its events are
        # published when the call's coroutine resumes after that: wait for them as well
        await owner.wait_for(lambda: _announced(box), 10.0)
        owner.hangup()
        await owner.close()
        [row] = _greetings(box)
        assert (row.status, row.kind, row.created_by) == ("pending_approval", "phone", "102")
        [recorded] = _audit(box, "greeting")
        assert (recorded.actor, recorded.channel, recorded.action) == ("102", "job", "create")
        assert json.loads(recorded.after)["status"] == "pending_approval"
        _check_announced(box, row.id, recorded.seq)
        standard = box.greeting_pcm()
        [approved] = configure(box.db, Change("greeting", "update", str(row.id),
                                              {"status": "active"}))
        assert approved.status == "applied" and approved.version == 2
        personal = box.greeting_pcm()
        assert personal != standard and similarity(personal, voice) >= 0.9

    run(tmp_path, test)


def _announced(box: Box) -> bool:
    return any(isinstance(e, StakeholderInformed) for e in box.org_events.events)


def _check_announced(box: Box, greeting_id: int, audit_seq: int) -> None:
    events = box.org_events.events
    [applied] = [e for e in events if isinstance(e, ChangeApplied)]
    assert (applied.resource_type, applied.resource_key, applied.routing_key) == (
        "greeting", str(greeting_id), "org.greeting.created")
    assert (applied.actor, applied.channel, applied.audit_seq) == ("102", "job", audit_seq)
    [told] = [e for e in events if isinstance(e, StakeholderInformed)]
    with box.db.session() as s:
        manager = s.scalar(select(User.id).where(User.username == "101"))
    assert (told.user_id, told.role, told.resource_type) == (manager, "phone_manager",
                                                             "greeting")
    assert told.routing_key == f"org.informed.user.{manager}"


def test_a_greeting_by_phone_follows_the_policy_through_the_change_path(tmp_path: Path) -> None:
    """Forbidden: refused, nothing written; allowed: active at once; the owner (user 102)
    acts on the "job" channel, so no permission is needed, and the audit chain holds."""
    data = tmp_path / "data"
    db = Database(sqlite_url(data))
    db.migrate()
    create_demo(db)  # with mailbox 102
    configure(db, Change("mailbox", "create", "777", {"name": "Front desk", "pin": "1234"}))
    view = MailboxView(_mailbox_id(db, "102"), 1, "102", "Service Manager", True)
    audio = Path("prompts/uploads/g.wav")
    for policy, expected in (("forbidden", None), ("allowed", "active"),
                             ("approval_required", "pending_approval")):
        configure(db, Change("voicemail", "update", "settings", {"greeting_policy": policy}))
        before = _audit_rows(db)
        with db.session() as s:
            if expected is None:
                with pytest.raises(NotAllowed, match="not allowed by the tenant's greeting"):
                    record_personal_greeting(s, view, audio)
            else:
                assert record_personal_greeting(s, view, audio) == expected
        assert len(_audit_rows(db)) == len(before) + (0 if expected is None else 1)
    with db.session() as s:  # a mailbox without a user: its own phone job is the owner
        record_personal_greeting(s, MailboxView(_mailbox_id(db, "777"), 1, "777", "Front desk",
                                                True), audio)
    rows = [r for r in _audit_rows(db) if r.resource_type == "greeting"]
    assert [(r.actor, r.actor_kind, r.channel) for r in rows[-3:]] == [
        ("102", "user", "job"), ("102", "user", "job"), ("job mailbox 777 owner", "job", "job")]
    assert [json.loads(r.after)["status"] for r in rows[-3:]] == [
        "active", "pending_approval", "pending_approval"]
    with db.session() as s:
        assert audit.verify(s).ok
    db.close()


def test_a_technician_without_a_registered_phone_is_still_shielded(tmp_path: Path) -> None:
    """Technician 201 has a mailbox (the demo gives everyone one) and no phone registered:
    an outside caller still meets the shield and enters the flow (here: the service
    manager's mailbox), while a co-worker is let through to 201's own voicemail."""

    async def test(box: Box) -> None:
        d = box.rig.engine.directory
        d.extensions[(1, "201")] = ExtensionInfo(1, "201", "Technician One", 5.0, 5)
        tenant = dataclasses.replace(d.tenants[1], main_number="100")
        d.tenants[1] = d.by_domain[DOMAIN] = d.default = tenant
        flow = FlowDocument.model_validate({"name": "front-desk", "timezone": "UTC", "nodes": {
            "start": {"type": "start", "next": "vm"},
            "vm": {"type": "voicemail", "mailbox": "102", "greeting": "standard"}}})
        d.routing[1] = TenantRouting(flow, StaticDirectory.build(
            {**NUMBERS, "201": "Technician One"}, roles={"technician": ["201"]},
            mailboxes=["102", "201"]))
        for n, caller in enumerate(("+12125550147", "101")):
            phone = SoftPhone(box.rig, caller, 7070 + n)
            assert (await phone.connect("201", wait=5.0)).status == 200
            phone.hangup()
            await phone.wait_for(lambda n=n: len(_ended(box)) == n + 1, 5.0)
            await phone.close()
        outside, colleague = _ended(box)
        assert outside["path"][-1]["node"] == "vm", outside["path"]
        assert "shielded: unknown caller" in outside["path"][0]["note"]
        assert "voicemail of 201" in colleague["path"][-1]["note"], colleague["path"]

    run(tmp_path, test)


def _ended(box: Box) -> list[dict[str, Any]]:
    return [c for c in box.rig.cdrs if c.get("ended_at") and c.get("path")]


def _mailbox_id(db: Database, number: str) -> int:
    with db.session() as s:
        return store.require_mailbox(s, 1, number).id


def _audit_rows(db: Database) -> list[Any]:
    with db.session() as s:
        rows = list(s.query(AuditEntry).order_by(AuditEntry.id))
        s.expunge_all()
        return rows


def _audit(box: Box, resource_type: str | None) -> list[Any]:
    with box.db.session() as s:
        query = s.query(AuditEntry).order_by(AuditEntry.seq)
        if resource_type is not None:
            query = query.filter(AuditEntry.resource_type == resource_type)
        rows = list(query)
        s.expunge_all()
        return rows


def _greetings(box: Box) -> list[Any]:
    with box.db.session() as s:
        return list(s.query(Greeting))


def test_reconcile_adds_a_message_whose_row_was_never_written(tmp_path: Path) -> None:
    async def test(box: Box) -> None:
        folder = store.message_dir(box.data, 1, "102")
        mailbox_id = _mailbox_id(box.db, "102")
        folder.mkdir(parents=True)
        from frontdesk.media.wav import write_wav_atomic

        write_wav_atomic(folder / "m1.wav", b"\x00\x10" * 8000)
        store.write_sidecar(
            folder / "m1.wav",
            {"id": "m1", "mailbox_id": mailbox_id, "caller": "103",
             "received_at": 1_700_000_000.0},
        )
        (folder / "m2.wav.part").write_bytes(b"\x00" * 44 + b"\x00\x10" * 4000)
        store.write_sidecar(
            folder / "m2.wav",
            {"id": "m2", "mailbox_id": mailbox_id, "caller": "101",
             "received_at": 1_700_000_001.0},
        )
        with box.db.session() as s:
            added = store.reconcile(s, box.data)
        assert sorted(added) == ["m1", "m2"]
        durations = sorted(m.duration for m in box.messages())
        assert durations == [0.5, 1.0]
        assert {m.mailbox_id for m in box.messages()} == {mailbox_id}

    run(tmp_path, test)


_ = Peer
