"""/api/v1/voicemail: who may open a mailbox, listing (a web check), WAV download, mark
heard, delete, the compliance report and greeting approval — with real tokens (tests/orgkit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from media_kit import configure

from frontdesk.api.http import create_app
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import Greeting, MailboxCheck
from frontdesk.media.wav import write_wav_atomic
from frontdesk.org.service import Change
from frontdesk.store.db import Database, sqlite_url
from orgkit import World, make_world

BASE = "/api/v1/voicemail"


class Office:
    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.db = Database(sqlite_url(self.data))
        self.db.migrate()
        self.world: World = make_world(self.db)
        tenant = self.world.tenant_id
        configure(
            self.db,
            Change("mailbox", "create", "102", {"name": "Service Manager", "pin": "1234",
                                                "responsible": ["service_manager", "103"]}),
            tenant_id=tenant,
        )
        with self.db.session() as s:
            box = store.require_mailbox(s, tenant, "102")
            self.ids = []
            for n, caller in enumerate(("101", "201")):
                wav = store.message_dir(self.data, tenant, "102") / f"m{n}.wav"
                write_wav_atomic(wav, b"\x00\x10" * 8000)
                meta = {
                    "id": f"m{n}",
                    "caller": caller,
                    "received_at": 1_700_000_000 + n,
                    "duration": 1.0,
                }
                self.ids.append(store.add_message(s, self.data, box, wav, meta).id)
        audio = self.data / "prompts" / "uploads" / "g.wav"
        write_wav_atomic(audio, b"\x00\x10" * 8000)
        [made] = configure(
            self.db,
            Change("greeting", "create", None, {"mailbox": "102", "source": "phone",
                                                "audio_path": "prompts/uploads/g.wav"}),
            tenant_id=tenant,
        )
        self.greeting = int(made.resource_key)
        app = create_app(db=self.db)
        app.state.data_dir = self.data
        self.client = TestClient(app)

    def get(self, who: str, path: str, **kw: Any) -> Any:
        return self.client.get(BASE + path, headers=self.world.headers(who), **kw)

    def post(self, who: str, path: str) -> Any:
        return self.client.post(BASE + path, headers=self.world.headers(who))


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    o = Office(tmp_path)
    with o.client:
        yield o


def test_the_responsible_person_lists_downloads_and_marks_heard(office: Office) -> None:
    listed = office.get("service_manager", "/mailboxes/102/messages")
    assert listed.status_code == 200, listed.text
    assert [m["caller"] for m in listed.json()] == ["101", "201"]
    audio = office.get("service_manager", f"/messages/{office.ids[0]}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF" and len(audio.content) == 44 + 16000
    heard = office.post("service_manager", f"/messages/{office.ids[0]}/heard")
    assert heard.json()["status"] == "saved" and heard.json()["heard_by"] == "service_manager"
    boxes = office.get("service_manager", "/mailboxes").json()
    assert [(b["number"], b["new"], b["saved"]) for b in boxes] == [("102", 1, 1)]
    with office.db.session() as s:
        checks = [(c.checked_by, c.channel) for c in s.query(MailboxCheck)]
    assert checks == [("service_manager", "web")] * 2
    gone = office.client.delete(
        f"{BASE}/messages/{office.ids[1]}", headers=office.world.headers("service_manager")
    )
    assert gone.status_code == 204
    assert not (store.message_dir(office.data, office.world.tenant_id, "102") / "m1.wav").exists()


def test_others_may_not_open_the_mailbox(office: Office) -> None:
    for path in ("/mailboxes/102/messages", f"/messages/{office.ids[0]}/audio"):
        denied = office.get("technician", path)
        assert denied.status_code == 403, denied.text
        assert "may not open mailbox 102" in denied.json()["detail"]
    assert office.get("technician", "/mailboxes").json() == []
    assert office.get("phone_manager", "/mailboxes/102/messages").status_code == 200
    assert office.get("service_manager", "/mailboxes/999/messages").status_code == 404
    assert office.client.get(f"{BASE}/mailboxes").status_code == 401


def test_compliance_report_needs_mailbox_read(office: Office) -> None:
    assert office.post("service_manager", "/mailboxes/102/checks").status_code == 201
    report = office.get("service_manager", "/compliance", params={"mailbox": "102"})
    assert report.status_code == 200, report.text
    [row] = report.json()
    assert row["mailbox"] == "102" and row["checks"][0]["by"] == "service_manager"
    assert office.get("technician", "/compliance").status_code == 403


def test_the_phone_manager_approves_a_greeting(office: Office) -> None:
    assert (
        office.post("service_manager", f"/greetings/{office.greeting}/approve").status_code == 403
    )
    ok = office.post("phone_manager", f"/greetings/{office.greeting}/approve")
    assert ok.status_code == 200 and ok.json()["status"] == "active"
    again = office.post("phone_manager", f"/greetings/{office.greeting}/approve")
    assert again.status_code == 409
    with office.db.session() as s:
        assert s.get(Greeting, office.greeting).decided_by == "phone_manager"  # type: ignore[union-attr]
