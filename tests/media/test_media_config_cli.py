"""`frontdesk voicemail ...` configuration through org's one change path: mailboxes, the
greeting template and policy, uploading and approving greetings — permission-checked for
`--as USER` (a denied change changes nothing), versioned (`history`, `rollback`), audited
with the actor and channel cli, the PIN never in the audit log or versions, and `audit
verify` intact afterwards. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from media_cli_kit import Fd, audit_rows, demo_fd
from media_kit import configure
from sqlalchemy import select

from frontdesk.media.model import Greeting, Mailbox
from frontdesk.media.wav import write_wav_atomic
from frontdesk.org.service import Change
from frontdesk.store.db import Database
from orgkit import db, dump, org_pg_url  # noqa: F401

PIN = "86429753"


@pytest.fixture
def fd(db: Database, tmp_path: Path) -> Fd:  # noqa: F811
    return demo_fd(db, tmp_path)


def test_mailbox_changes_are_checked_audited_and_rolled_back(fd: Fd) -> None:
    taken = fd("voicemail", "mailbox", "add", "102", "--pin", "1234", code=2)  # the demo's
    assert "mailbox '102' already exists" in taken.output
    fd("ext", "add", "104", "--name", "Dispatcher")  # an extension without a mailbox yet
    out = fd("voicemail", "mailbox", "add", "104", "--pin", "1234", "--responsible", "104,103")
    assert "mailbox 104 (Dispatcher) created" in out.output
    before = dump(fd.db)
    denied = fd("voicemail", "mailbox", "set", "104", "--check-hours", "9,13", "--as", "103",
                code=2)
    assert "103 may not update mailbox 104 (needs permission mailbox.update)" in denied.output
    assert dump(fd.db) == before
    changed = fd("voicemail", "mailbox", "set", "104", "--pin", PIN, "--check-hours", "9,13",
                 "--as", "101")
    assert "checks: 09:00, 13:00" in changed.output
    bad = fd("voicemail", "mailbox", "set", "104", "--timezone", "Mars/Olympus", "--as", "101",
             code=2)
    assert "Mars/Olympus" in bad.output and "IANA" in bad.output
    rows = [r for r in audit_rows(fd.db, "mailbox") if r.resource_key == "104"]
    assert [(r.actor, r.channel, r.action) for r in rows] == [
        ("local administrator", "cli", "create"), ("101", "cli", "update")]
    assert json.loads(rows[1].after or "{}")["pin"] == "(secret)"
    history = fd("history", "mailbox", "104").output
    assert "101" in history
    fd("rollback", "mailbox", "104", "1", "--as", "101")
    with fd.db.session() as s:
        box = s.scalar(select(Mailbox).where(Mailbox.number == "104"))
        assert box is not None and box.check_schedule is None
    for table in ("audit_log", "resource_versions"):
        text = repr(dump(fd.db)[table])
        assert PIN not in text and "scrypt" not in text, table
    fd("voicemail", "mailbox", "add", "777", "--pin", "1234", "--name", "Front desk")
    fd("voicemail", "mailbox", "delete", "777", "--as", "102", code=2)
    assert "mailbox 777 deleted" in fd("voicemail", "mailbox", "delete", "777", "--as",
                                       "101").output
    assert "audit log intact" in fd("audit", "verify").output


def test_template_and_policy_need_voicemail_update(fd: Fd) -> None:
    before = dump(fd.db)
    denied = fd("voicemail", "template", "--policy", "allowed", "--as", "102", code=2)
    assert "needs permission voicemail.update" in denied.output
    assert dump(fd.db) == before
    shown = fd("voicemail", "template", "--as", "102").output  # showing changes nothing
    assert "personal greetings: approval_required" in shown and dump(fd.db) == before
    unset = fd("voicemail", "template", "--text", "Call {urgent}.", "--as", "101", code=2)
    assert "{urgent}" in unset.output
    ok = fd("voicemail", "template", "--var", "service_manager_extension=102", "--policy",
            "allowed", "--max-seconds", "120", "--as", "101")
    assert "personal greetings: allowed" in ok.output and "longest message: 120 s" in ok.output
    demo, row = audit_rows(fd.db, "voicemail")  # `init --demo` named the service manager
    assert (demo.actor, row.actor, row.channel, row.action) == (
        "local administrator", "101", "cli", "update")
    fd("rollback", "voicemail", "settings", "1", "--as", "101")
    assert "personal greetings: approval_required" in fd("voicemail", "template").output


@pytest.mark.skipif(not shutil.which("sox"), reason="needs sox")
def test_greetings_are_uploaded_and_approved_by_the_phone_manager(fd: Fd) -> None:
    wav = fd.data / "mine.wav"  # for the demo's mailbox 102
    write_wav_atomic(wav, b"\x00\x10\x00\xf0" * 8000)
    fd("voicemail", "greeting", "upload", "102", str(wav), "--as", "102", code=2)
    assert not list((fd.data / "prompts" / "uploads").glob("*.wav"))  # a refused upload is gone
    up = fd("voicemail", "greeting", "upload", "102", str(wav), "--as", "101")
    assert "(active) for mailbox 102" in up.output
    [pending] = configure(fd.db, Change("greeting", "create", None, {
        "mailbox": "102", "source": "phone", "audio_path": "prompts/uploads/by-phone.wav"}))
    key = str(pending.resource_key)
    assert pending.after is not None and pending.after["status"] == "pending_approval"
    denied = fd("voicemail", "greeting", "approve", key, "--as", "102", code=2)
    assert "needs permission greeting.update" in denied.output
    assert f"greeting {key}: active" in fd("voicemail", "greeting", "approve", key, "--as",
                                           "101").output
    again = fd("voicemail", "greeting", "approve", key, "--reject", "--as", "101", code=2)
    assert "not waiting for approval" in again.output
    with fd.db.session() as s:
        statuses = dict(s.execute(select(Greeting.id, Greeting.status)).all())
    assert sorted(statuses.values()) == ["active", "replaced"]
    assert [(r.actor, r.action) for r in audit_rows(fd.db, "greeting")] == [
        ("101", "create"), ("local administrator", "create"), ("101", "update")]
    assert "audit log intact" in fd("audit", "verify").output
