"""`frontdesk menu ...` through org's one change path: a self-service menu is added, replaced
and removed as ``--as USER`` (permission ``menu.*``; a denied change changes nothing) or the
local administrator, versioned (`history`, `rollback`), audited with the actor and channel
cli; a role outside the business domain that the tenant lets change menus files a change
request the Phone Manager approves; what the server could not run is refused naming the
part. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media_cli_kit import Fd, audit_rows, demo_fd
from media_kit import configure
from sqlalchemy import select

from frontdesk.media.model import Menu
from frontdesk.org.service import Change
from frontdesk.store.db import Database
from orgkit import db, dump, org_pg_url  # noqa: F401

MENU = ["--name", "Main menu", "--prompt", "For service press 1.", "--choice",
        "1=extension:103", "--choice", "2=voicemail:102"]


@pytest.fixture
def fd(db: Database, tmp_path: Path) -> Fd:  # noqa: F811
    """The demo tenant; 101 is the Phone Manager, 103 holds no role."""
    return demo_fd(db, tmp_path)


def _menus(fd: Fd) -> list[dict[str, object]]:
    return list(json.loads(fd("menu", "list", "--json").output))


def test_menus_are_permission_checked_versioned_audited_and_rolled_back(fd: Fd) -> None:
    before = dump(fd.db)
    denied = fd("menu", "add", "500", *MENU, "--as", "103", code=2)
    assert "103 may not create menu 500 (needs permission menu.create)" in denied.output
    assert dump(fd.db) == before
    made = fd("menu", "add", "500", *MENU, "--as", "101", "--reason", "opening day")
    assert "menu 500 (Main menu): 1 -> extension:103, 2 -> voicemail:102" in made.output
    replaced = fd("menu", "add", "500", "--name", "Main menu", "--prompt", "Press 1.",
                  "--choice", "1=extension:102", "--retries", "3", "--default", "hangup")
    assert "1 -> extension:102" in replaced.output
    [shown] = _menus(fd)
    assert shown == {"number": "500", "name": "Main menu", "prompt": "Press 1.",
                     "choices": {"1": "extension:102"}, "timeout": 5.0, "retries": 3,
                     "invalid_prompt": "Sorry, that is not a valid choice.",
                     "default_branch": "hangup"}
    rows = audit_rows(fd.db, "menu")
    assert [(r.actor, r.channel, r.action, r.reason) for r in rows] == [
        ("101", "cli", "create", "opening day"), ("local administrator", "cli", "update", "")]
    history = fd("history", "menu", "500").output
    assert "menu 500" in history and "hangup" in history
    fd("rollback", "menu", "500", "1", "--as", "101")
    [back] = _menus(fd)
    assert back["choices"] == {"1": "extension:103", "2": "voicemail:102"}
    assert back["retries"] == 2 and back["default_branch"] is None
    fd("menu", "remove", "500", "--as", "103", code=2)
    assert "menu 500 removed" in fd("menu", "remove", "500", "--as", "101").output
    assert _menus(fd) == []
    assert len(audit_rows(fd.db, "menu")) == 4
    assert "audit log intact" in fd("audit", "verify").output


def test_what_the_server_could_not_run_is_refused_naming_the_part(fd: Fd) -> None:
    before = dump(fd.db)
    for args, words in (
        (["--choice", "1=ring:103"], "ring:103"),
        (["--choice", "x=hangup"], "'x'"),
        (["--choice", "1extension"], "KEYS=BRANCH"),
        (["--choice", "1=hangup", "--timeout", "0.2"], "timeout"),
        (["--choice", "1=hangup", "--default", "menu:"], "menu:"),
    ):
        out = fd("menu", "add", "501", "--name", "M", "--prompt", "Hi.", *args, code=2)
        assert words in out.output, (args, out.output)
        assert "Traceback" not in out.output
    assert dump(fd.db) == before
    missing = fd("menu", "remove", "509", code=2)
    assert "509" in missing.output and "does not exist" in missing.output


def test_a_menu_change_from_outside_the_business_domain_waits_for_its_owner(fd: Fd) -> None:
    """The tenant lets the Technical Contact add menus: theirs becomes a change request
    (business domain) that the Phone Manager approves."""
    fd("role", "grant", "102", "technical_contact")
    configure(fd.db, Change("permission", "update", "technical_contact/menu.create",
                            {"allowed": True}))
    filed = fd("menu", "add", "502", *MENU, "--as", "102")
    assert "change request filed (not applied yet)" in filed.output
    with fd.db.session() as s:
        assert s.scalar(select(Menu).where(Menu.number == "502")) is None
    request_id = filed.output.split("#", 1)[1].split()[0].strip(":")
    fd("change", "approve", request_id, "--as", "101", "--comment", "fine")
    assert [m["number"] for m in _menus(fd)] == ["502"]
