"""The demo tenant's voicemail out of the box: `frontdesk init --demo` gives every person a
mailbox (through org's change path, audited) with a generated PIN printed next to the SIP
password (table and --json) and stored only as a hash; the service manager's mailbox — where
the front-desk flow ends — is checked by the service manager and the coordinator; the
standard greeting names the service manager; and `frontdesk coverage` finds no mailbox
nobody is responsible for (while still finding one when it exists). On SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from media_cli_kit import Fd, audit_rows
from sqlalchemy import select

from frontdesk.media import voicemail_store as store
from frontdesk.media.model import Mailbox, VoicemailSettings
from frontdesk.org.roles import OWNER_ROLES
from frontdesk.routing.templates import front_desk
from frontdesk.store.db import Database
from orgkit import db, dump, org_pg_url  # noqa: F401

PEOPLE = ("101", "102", "103", "201", "202", "203")


@pytest.fixture
def fd(db: Database, tmp_path: Path) -> Fd:  # noqa: F811
    return Fd(db, tmp_path)


def _mailboxes(db: Database) -> dict[str, Mailbox]:  # noqa: F811
    with db.session() as s:
        boxes = {b.number: b for b in s.scalars(select(Mailbox))}
        s.expunge_all()
        return boxes


def test_init_demo_gives_everyone_a_mailbox_with_the_printed_pin(fd: Fd) -> None:
    info: dict[str, Any] = json.loads(fd("init", "--demo", "--json").output)
    pins = {e["number"]: e["voicemail_pin"] for e in info["extensions"]}
    assert sorted(pins) == list(PEOPLE)
    assert all(re.fullmatch(r"\d{6}", pin) for pin in pins.values()), pins
    boxes = _mailboxes(fd.db)
    assert sorted(boxes) == list(PEOPLE)
    for number, pin in pins.items():
        box = boxes[number]
        assert store.verify_pin(pin, box.pin_hash), number
        assert not store.verify_pin(str((int(pin) + 1) % 10**6).zfill(6), box.pin_hash)
        assert box.no_answer_to_voicemail and box.name == next(
            e["name"] for e in info["extensions"] if e["number"] == number)
        assert box.check_schedule == {"timezone": front_desk().timezone}
    assert boxes["102"].responsible == ["102", "103"]  # the front desk's mailbox
    assert all(boxes[n].responsible == [n] for n in PEOPLE if n != "102")
    with fd.db.session() as s:
        settings = s.scalar(select(VoicemailSettings))
        assert settings is not None
        assert settings.variables == {"service_manager_extension": "102"}
    created = audit_rows(fd.db, "mailbox")
    assert sorted(r.resource_key for r in created) == list(PEOPLE)
    assert {(r.actor, r.channel, r.action) for r in created} == {
        ("local administrator", "cli", "create")}
    assert {json.loads(r.after or "{}")["pin"] for r in created} == {"(secret)"}
    stored = repr(dump(fd.db))  # no PIN in clear anywhere: only scrypt hashes
    assert not any(re.search(f"['\"]{pin}['\"]", stored) for pin in pins.values())
    assert all(b.pin_hash.startswith("scrypt$") for b in boxes.values())
    shown = fd("voicemail", "template").output
    assert '"service_manager_extension": "102"' in shown


def test_the_demo_table_prints_each_pin_next_to_the_password(fd: Fd) -> None:
    table = fd("init", "--demo").output
    assert "Voicemail" in table and "*97" in table
    rows = dict(re.findall(r"^│ (\d{3}) .*│ (\d{6}) +│$", table, re.MULTILINE))
    assert sorted(rows) == list(PEOPLE), table
    boxes = _mailboxes(fd.db)
    assert all(store.verify_pin(pin, boxes[n].pin_hash) for n, pin in rows.items())


def test_coverage_of_the_demo_finds_no_unchecked_mailbox(fd: Fd) -> None:
    fd("init", "--demo", "--json")
    report = json.loads(fd("coverage", "--json", code=1).output)  # owner roles are unheld
    assert report["problems"] and not [p for p in report["problems"]
                                       if p["check"] in ("mailboxes", "voicemail-checkers")]
    for n, role in enumerate(OWNER_ROLES):
        fd("user", "add", f"owner{n}", "--name", f"Owner {n}")
        fd("role", "grant", f"owner{n}", role.value)
    assert json.loads(fd("coverage", "--json").output) == {
        "tenant": "demo", "ok": True, "problems": []}
    fd("voicemail", "mailbox", "add", "777", "--pin", "1234", "--name", "Front desk")
    fd("voicemail", "mailbox", "set", "201", "--responsible", "999")
    [technician, front] = json.loads(fd("coverage", "--json", code=1).output)["problems"]
    assert (front["check"], front["subject"]) == ("voicemail-checkers", "mailbox 777")
    assert "nobody responsible for checking it" in front["message"]
    assert "frontdesk voicemail mailbox set 777 --responsible" in front["fix"]
    assert technician["subject"] == "mailbox 201" and "(999)" in technician["message"]
    fd("voicemail", "mailbox", "set", "777", "--responsible", "102,103")
    fd("voicemail", "mailbox", "set", "201", "--responsible", "owner1")  # a user name counts
    assert json.loads(fd("coverage", "--json").output)["ok"] is True
