"""``frontdesk flow ...`` through click's CliRunner against a real database (SQLite and
PostgreSQL): the simulator reads what the engine reads (extensions, the published flow or the
template, tickets' caller lookup), and versions are published and rolled back by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import select

from frontdesk.cli import cli
from frontdesk.routing.templates import front_desk
from frontdesk.store import repo
from frontdesk.store.db import Database
from frontdesk.store.models import User
from frontdesk.tickets import directory as tickets_directory
from frontdesk.tickets import service as tickets_service

CALLER = "+12125550147"  # a number phonenumbers accepts (tickets stores it)


@pytest.fixture
def demo(db_url: str, tmp_path: Path, open_db) -> tuple[CliRunner, list[str], Database]:  # type: ignore[no-untyped-def]
    """The demo tenant (101 office manager ... 201-203 technicians) in a real database."""
    runner = CliRunner()
    where = ["--data", str(tmp_path / "data"), "--db", db_url]
    done = runner.invoke(cli, ["init", "--demo", "--json", *where])
    assert done.exit_code == 0, done.output
    return runner, where, open_db(db_url)


def _run(demo: tuple[CliRunner, list[str], Database], *args: str, code: int = 0) -> Result:
    runner, where, _ = demo
    group, command, *rest = args
    result = runner.invoke(cli, [group, command, *where, *rest])
    assert result.exit_code == code, result.output
    return result


def test_simulate_a_holiday_call_to_the_main_number(demo) -> None:  # type: ignore[no-untyped-def]
    out = _run(demo, "flow", "simulate", "--tenant", "demo", "--from", CALLER, "--to", "main",
               "--at", "2026-12-25T17:30").output.splitlines()  # fmt: skip
    assert (
        out[0]
        == f"Call from {CALLER} to the main number at Fri 2026-12-25 17:30 EST (America/New_York)"
    )
    assert out[1] == 'Runs flow "front-desk" (the built-in template; nothing published yet)'
    assert (
        "business-hours" in out[3]
        and "holiday: Christmas Day (US public holiday) -> after-hours-message" in out[3]
    )
    assert out[-1] == 'Result: voicemail of 102 (Service Manager) (greeting "standard")'


def test_simulate_with_people_who_do_not_answer(demo) -> None:  # type: ignore[no-untyped-def]
    out = _run(demo, "flow", "simulate", "--from", CALLER, "--at", "2026-12-22T10:30",
               "--no-answer", "office-manager").output  # fmt: skip
    assert "ringing 101 (Office Manager) for 20 s" in out
    assert "nobody answered in 20 s -> ring-service-team" in out
    assert out.splitlines()[-1] == "Result: answered by 102 (Service Manager)"
    everyone = _run(demo, "flow", "simulate", "--from", CALLER, "--at", "2026-12-22T10:30",
                    "--no-answer", "everyone").output  # fmt: skip
    assert (
        everyone.splitlines()[-1]
        == 'Result: voicemail of 102 (Service Manager) (greeting "standard")'
    )
    busy = _run(demo, "flow", "simulate", "--from", CALLER, "--at", "2026-12-22T10:30",
                "--busy", "101", "--no-answer", "role:service_manager", "--no-answer", "103").output  # fmt: skip
    assert "busy -> ring-service-team" in busy


def test_simulate_the_shield_with_tickets_data(demo) -> None:  # type: ignore[no-untyped-def]
    shielded = _run(demo, "flow", "simulate", "--from", CALLER, "--to", "201",
                    "--at", "2026-12-22T10:30").output  # fmt: skip
    assert f'shielded: unknown caller {CALLER}; the call goes to flow "front-desk"' in shielded
    assert shielded.splitlines()[-1] == "Result: answered by 101 (Office Manager)"
    _, _, db = demo
    with db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        tech = s.scalar(select(User.id).where(User.tenant_id == tenant.id, User.username == "201"))
        assert tech is not None
        company = tickets_directory.create_company(s, tenant.id, "Acme Corp")
        contact = tickets_directory.create_contact(s, tenant.id, "Dana Smith", company_ids=[company.id],
                                                   numbers=[CALLER])  # fmt: skip
        request = tickets_service.create_request(s, tenant.id, tech, title="Printer down",
                                                 contact_id=contact.id, assignee_id=tech)  # fmt: skip
        ref = f"SR-{request.number}"
    known = _run(
        demo, "flow", "simulate", "--from", CALLER, "--to", "201", "--at", "2026-12-22T10:30"
    ).output
    assert (f"shielded: service request #{ref} \"Printer down\" of {CALLER} (Dana Smith, Acme Corp) "
            f"is assigned to 201 (Technician One) but not being worked on right now") in known  # fmt: skip
    with db.session() as s:
        tickets_service.set_working_on(s, tenant.id, tech, tech, ref)
    through = _run(
        demo, "flow", "simulate", "--from", CALLER, "--to", "201", "--at", "2026-12-22T19:30"
    ).output
    assert (f"let through: {CALLER} (Dana Smith, Acme Corp) has service request #{ref} \"Printer "
            f"down\", which 201 (Technician One) is working on right now") in through  # fmt: skip
    assert through.splitlines()[-1] == "Result: answered by 201 (Technician One)"
    other = _run(
        demo, "flow", "simulate", "--from", CALLER, "--to", "202", "--at", "2026-12-22T10:30"
    ).output
    assert "shielded" in other
    coworker = _run(
        demo, "flow", "simulate", "--from", "102", "--to", "203", "--no-answer", "203"
    ).output
    assert "let through: caller 102 (Service Manager) is a co-worker" in coworker
    assert (
        coworker.splitlines()[-1]
        == 'Result: voicemail of 203 (Technician Three) (greeting "unavailable")'
    )


def test_simulate_as_json(demo) -> None:  # type: ignore[no-untyped-def]
    out = _run(demo, "flow", "simulate", "--from", CALLER, "--to", "201", "--at",
               "2026-12-19T11:00", "--json").output  # fmt: skip
    data = json.loads(out)
    assert data["tenant"] == "demo" and data["flow"] == "front-desk"
    assert data["shield"]["decision"] == "shielded"
    assert [e["node"] for e in data["path"]][:3] == ["shield", "start", "business-hours"]
    assert data["result"] == {"action": "voicemail", "node": "voicemail-after-hours", "mailbox": "102",
                              "greeting": "standard", "greeting_text": ""}  # fmt: skip
    assert data["started_at"].startswith("2026-12-19T11:00:00-05:00")


def _file(tmp_path: Path, timeout: int = 25, target: str = "role:office_manager") -> Path:
    data = front_desk().to_json()
    data["nodes"]["ring-office-manager"]["timeout"] = timeout
    data["nodes"]["ring-office-manager"]["targets"] = [target]
    path = tmp_path / f"front-desk-{timeout}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_publish_list_show_and_roll_back(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert (
        "has no flows yet; calls run the front-desk template" in _run(demo, "flow", "list").output
    )
    first = _run(demo, "flow", "publish", "--file", str(_file(tmp_path, 25)), "--actor", "dana")
    assert first.output.strip() == 'flow "front-desk" version 1 published by dana'
    sim = _run(
        demo, "flow", "simulate", "--from", CALLER, "--at", "2026-12-22T10:30", "--no-answer", "101"
    )
    assert 'Runs flow "front-desk" version 1, published by dana at ' in sim.output
    assert "ringing 101 (Office Manager) for 25 s" in sim.output
    _run(demo, "flow", "draft", str(_file(tmp_path, 30)), "--actor", "erin")
    second = _run(demo, "flow", "publish", "--actor", "erin", "--flow", "front-desk")
    assert second.output.strip() == 'flow "front-desk" version 2 published by erin'
    rolled = _run(demo, "flow", "rollback", "--actor", "frank")
    assert (
        rolled.output.strip()
        == 'flow "front-desk" version 3 published by frank (rollback to version 1)'
    )
    listing = _run(demo, "flow", "list").output
    for text in ("published", "archived", "frank", "erin", "rollback"):
        assert text in listing
    shown = yaml.safe_load(_run(demo, "flow", "show", "--version", "2").output)
    assert shown["nodes"]["ring-office-manager"]["timeout"] == 30
    current = yaml.safe_load(_run(demo, "flow", "show").output)
    assert current["nodes"]["ring-office-manager"]["timeout"] == 25
    template = json.loads(
        _run(demo, "flow", "show", "--template", "front-desk", "--format", "json").output
    )
    assert template == front_desk().to_json()
    missing = _run(demo, "flow", "show", "--draft", code=2).output
    assert 'flow "front-desk" has no draft; see `frontdesk flow list`' in missing


def test_validate_and_publish_refuse_a_broken_flow(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = _file(tmp_path, 25, target="group:service-managers")
    out = _run(demo, "flow", "validate", str(broken), code=2).output
    assert (
        'flow "front-desk" node "ring-office-manager": target group "service-managers" does not exist'
        in out
    )
    assert "Traceback" not in out
    refused = _run(demo, "flow", "publish", "--file", str(broken), "--actor", "dana", code=2).output
    assert "the flow cannot be used" in refused
    assert "has no flows yet" in _run(demo, "flow", "list").output  # nothing was saved
    good = _run(demo, "flow", "validate", str(_file(tmp_path, 25))).output
    assert good.strip() == 'flow "front-desk" is valid for tenant demo'
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\nnodes: [a\n")
    assert (
        "not valid YAML or JSON at line"
        in _run(demo, "flow", "validate", str(bad_yaml), code=2).output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-answer", "janitor"], '"janitor" is not an extension, user, group or role'),
        (
            ["--at", "next tuesday"],
            "--at 'next tuesday' must be a date and time like 2026-12-25T17:30",
        ),
        (["--to", "999"], '--to "999" is neither "main" nor an extension of this tenant'),
        (["--tenant", "nope"], "tenant 'nope' does not exist (tenants: demo)"),
        (["--var", "novalue"], "--var 'novalue' must be NAME=VALUE"),
    ],
)
def test_simulate_mistakes_are_one_readable_line(demo, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    out = _run(demo, "flow", "simulate", "--from", CALLER, *args, code=2).output
    assert message in out and "Traceback" not in out


def test_rollback_and_publish_mistakes(demo) -> None:  # type: ignore[no-untyped-def]
    assert (
        "has no published version to roll back"
        in _run(demo, "flow", "rollback", "--actor", "x", code=2).output
    )
    assert "has no draft to publish" in _run(demo, "flow", "publish", "--actor", "x", code=2).output
    assert "say who is making the change: --as USER" in _run(demo, "flow", "publish", code=2).output


def _outside_file(tmp_path: Path) -> Path:
    data = front_desk().to_json()
    data["nodes"]["voicemail-after-hours"] = {"type": "transfer", "number": "+15559870000"}
    path = tmp_path / "front-desk-outside.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_as_a_user_their_roles_apply_and_a_new_outside_number_waits_for_it(
    demo, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    denied = _run(demo, "flow", "publish", "--file", str(_file(tmp_path)), "--as", "201",
                  code=2).output  # fmt: skip
    assert "201 may not draft flow front-desk (needs permission flow.draft)" in denied
    assert "Traceback" not in denied
    _run(demo, "role", "grant", "102", "contact_center_manager")
    _run(demo, "role", "grant", "103", "technical_contact")
    first = _run(demo, "flow", "publish", "--file", str(_file(tmp_path)), "--as", "102")
    assert first.output.strip() == 'flow "front-desk" version 1 published by 102'
    asked = _run(demo, "flow", "publish", "--file", str(_outside_file(tmp_path)), "--as", "102",
                 "--reason", "after hours to the answering service").output  # fmt: skip
    assert "change request filed (not applied yet): #" in asked
    assert "waits for infrastructure owner" in asked
    shown = _run(demo, "flow", "show").output
    assert "+15559870000" not in shown  # calls still run version 1
    number = asked.split("#", 1)[1].split(" ", 1)[0]
    _run(demo, "change", "approve", number, "--as", "103")
    assert "+15559870000" in _run(demo, "flow", "show").output
    both = _run(demo, "flow", "discard", "--as", "102", "--actor", "x", code=2).output
    assert "give --as USER or --actor NAME, not both" in both
