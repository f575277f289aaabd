"""The CLI through org's one change path: `init --demo` (roles, API administrator), `ext
add/set` and `tenant add` (same output, now audited as the local administrator or `--as`
someone), `audit verify` (exit 1 on tampering), `coverage` (exit 1 on problems), `role`,
`user passwd`, `token create`, `change list/approve/reject`. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from frontdesk.api.http import create_app
from frontdesk.cli import cli
from frontdesk.org.access import Actor
from frontdesk.org.model import AuditEntry, RoleAssignment
from frontdesk.org.roles import OWNER_ROLES
from frontdesk.org.service import Change, apply_change
from frontdesk.store.db import Database
from frontdesk.store.models import Extension, User


class Fd:
    """Runs `frontdesk ...` against one database."""

    def __init__(self, db: Database, tmp_path: Path) -> None:
        self.db = db
        self.base = ["--data", str(tmp_path), "--db", db.url.render_as_string(hide_password=False)]

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(cli, [*args, *self.base], input=stdin)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result


@pytest.fixture
def fd(db: Database, tmp_path: Path) -> Fd:
    return Fd(db, tmp_path)


@pytest.fixture
def demo(fd: Fd) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(fd("init", "--demo", "--json").output)
    return info


def _audit(db: Database) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.tenant_id, AuditEntry.seq)))


def test_demo_assigns_roles_and_an_api_administrator(fd: Fd, demo: dict[str, Any]) -> None:
    assert demo["admin"]["username"] == "admin" and len(demo["admin"]["password"]) >= 12
    with fd.db.session() as s:
        held = {(u, r) for u, r in s.execute(select(User.username, RoleAssignment.role)
                                            .join(RoleAssignment, RoleAssignment.user_id == User.id))}
    assert held == {("101", "office_manager"), ("102", "service_manager"),
                    ("103", "service_coordinator"), ("201", "technician"), ("202", "technician"),
                    ("203", "technician"), ("admin", "administrator")}
    assert {e.actor for e in _audit(fd.db)} == {"local administrator"}
    assert {e.channel for e in _audit(fd.db)} == {"cli"}
    client = TestClient(create_app(db=fd.db))
    login = client.post("/api/v1/login", json={"tenant": "demo", **demo["admin"]})
    assert login.status_code == 200, login.text
    first = demo["extensions"][0]
    assert first == {"number": "101", "name": "Office Manager", "role": "office_manager",
                     "username": "101", "password": first["password"],
                     "voicemail_pin": first["voicemail_pin"]}
    assert first["voicemail_pin"].isdigit() and len(first["voicemail_pin"]) == 6


def test_ext_and_tenant_commands_keep_their_output_and_are_audited(fd: Fd,
                                                                   demo: dict[str, Any]) -> None:
    out = fd("ext", "add", "104", "--name", "Desk 4", "--password", "s3cret99").output
    assert out.strip() == "extension 104 (Desk 4) added to demo; SIP user 104, password s3cret99"
    assert fd("ext", "set", "104", "--ring-timeout", "15").output.strip() == "extension 104 updated"
    assert fd("tenant", "add", "acme", "--name", "Acme", "--domain", "acme.test").output.strip() \
        == "tenant acme added (SIP domain acme.test)"
    with fd.db.session() as s:
        ext = s.scalar(select(Extension).where(Extension.number == "104"))
        assert ext is not None and ext.ring_timeout == 15
    last = _audit(fd.db)[-4:]
    assert [(e.resource_type, e.action) for e in last] == [
        ("user", "create"), ("extension", "create"), ("extension", "update"), ("tenant", "create")]
    assert all(e.actor == "local administrator" and e.actor_kind == "local-admin" for e in last)
    assert "s3cret99" not in "".join(str(e.after) for e in _audit(fd.db))


def test_acting_as_a_user_applies_their_roles(fd: Fd, demo: dict[str, Any]) -> None:
    denied = fd("ext", "set", "101", "--ring-timeout", "9", "--as", "201", code=2)
    assert "201 may not update extension 101" in denied.output
    fd("role", "grant", "103", "phone_manager")
    fd("ext", "set", "101", "--ring-timeout", "9", "--as", "103")
    assert _audit(fd.db)[-1].actor == "103"
    unknown = fd("ext", "set", "101", "--name", "x", "--as", "nobody", code=2)
    assert "no such user" in unknown.output


def test_audit_verify_detects_tampering(fd: Fd, demo: dict[str, Any]) -> None:
    assert "audit log intact" in fd("audit", "verify").output
    victim = _audit(fd.db)[3]
    with fd.db.session() as s:
        s.execute(update(AuditEntry).where(AuditEntry.id == victim.id).values(actor="mallory"))
    failed = fd("audit", "verify", code=1)
    assert f"seq {victim.seq} (id {victim.id})" in failed.output
    assert "hash mismatch" in failed.output


def test_coverage_fails_until_every_owner_role_is_held(fd: Fd, demo: dict[str, Any]) -> None:
    assert "Emergency" in fd("coverage", "--json", code=1).output
    for n, role in enumerate(OWNER_ROLES):
        fd("user", "add", f"owner{n}", "--name", f"Owner {n}")
        fd("role", "grant", f"owner{n}", role.value)
    report = json.loads(fd("coverage", "--json").output)
    assert report["ok"] is True and report["problems"] == []
    assert OWNER_ROLES[3].value == "emergency_contact"
    fd("role", "revoke", "owner3", "emergency_contact")
    assert "emergency_contact" in fd("coverage", "--json", code=1).output


def test_role_list_and_bad_role_names(fd: Fd, demo: dict[str, Any]) -> None:
    assert "service_coordinator" in fd("role", "list").output
    assert "unknown role 'boss'" in fd("role", "grant", "101", "boss", code=2).output


def test_user_passwd_and_token_create(fd: Fd, demo: dict[str, Any]) -> None:
    fd("user", "passwd", "102", "--password", "a long passphrase")
    client = TestClient(create_app(db=fd.db))
    assert client.post("/api/v1/login", json={"tenant": "demo", "username": "102",
                                              "password": "a long passphrase"}).status_code == 200
    short = fd("user", "passwd", "102", "--password", "short", code=2)
    assert "at least 8" in short.output
    token = fd("token", "create", "102").output.strip()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "102"


def test_change_requests_from_the_cli(fd: Fd, demo: dict[str, Any]) -> None:
    fd("user", "add", "pam", "--name", "Pam")
    fd("role", "grant", "pam", "phone_manager")
    fd("user", "add", "tess", "--name", "Tess")
    fd("role", "grant", "tess", "technical_contact")
    with fd.db.session() as s:
        pam = s.scalar(select(User).where(User.username == "pam"))
        assert pam is not None
        first = apply_change(s, Actor.for_user(pam), "api", Change(
            "tenant", "update", "demo", {"digest_algorithms": ["SHA-256", "MD5"]}))
        second = apply_change(s, Actor.for_user(pam), "api", Change(
            "tenant", "update", "demo", {"allow_unauthenticated_loopback": True}))
    listed = fd("change", "list", "--status", "open").output
    assert f"#{first.change_request.id} update tenant demo by pam" in listed  # type: ignore[union-attr]
    refused = fd("change", "approve", str(first.change_request.id), "--as", "pam", code=2)  # type: ignore[union-attr]
    assert "cannot decide it" in refused.output
    approved = fd("change", "approve", str(first.change_request.id), "--as", "tess")  # type: ignore[union-attr]
    assert "[applied]" in approved.output
    rejected = fd("change", "reject", str(second.change_request.id), "--as", "tess",  # type: ignore[union-attr]
                  "--comment", "not on this network")
    assert "[rejected]" in rejected.output
    assert fd("change", "list", "--status", "open").output.strip() == "no change requests"


def test_the_matrix_command_prints_the_docs() -> None:
    result = CliRunner().invoke(cli, ["role", "matrix"])
    assert result.exit_code == 0 and "| extension.update |" in result.output
