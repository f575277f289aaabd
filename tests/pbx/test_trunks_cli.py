"""`frontdesk trunk add|set|list|remove` on a real database (SQLite and PostgreSQL): the
Technical Contact makes and changes a trunk with --as, an office manager is refused naming
the permission and nothing changes, the password never prints, bad input names the field
and the fix (exit 2, no traceback), and the change is audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from frontdesk.cli import cli
from store.conftest import db_url, open_db, pg_server_url  # noqa: F401  (fixtures)

ADD = ["--host", "192.0.2.10", "--username", "acme", "--password", "s3cret-pw",
       "--source", "192.0.2.10", "--did", "+15551230000=main", "--did", "5551230101=ext:101",
       "--dial-rule", "9", "--caller-id", "+15551230000"]


@pytest.fixture
def run(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    runner = CliRunner()
    where = ["--data", str(tmp_path / "data"), "--db", db_url]
    assert runner.invoke(cli, ["init", "--demo", *where]).exit_code == 0

    def invoke(*args: str, code: int = 0) -> Result:
        group, command, *rest = args
        result = runner.invoke(cli, [group, command, *where, *rest])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result

    return invoke


def test_the_technical_contact_adds_changes_and_removes_a_trunk(run) -> None:  # type: ignore[no-untyped-def]
    run("role", "grant", "102", "technical_contact")
    assert "trunk carrier added" in run("trunk", "add", "carrier", "--as", "102", *ADD).output
    assert "changed: port" in run("trunk", "set", "carrier", "--as", "102",
                                  "--port", "5080").output
    [listed] = json.loads(run("trunk", "list", "--json").output)
    assert listed["port"] == 5080 and listed["password"] == "(secret)"
    assert listed["dids"] == {"+15551230000": "main", "+15551230101": "ext:101"}
    audit = run("audit", "list").output
    assert "trunk carrier" in audit and "s3cret-pw" not in audit
    run("trunk", "remove", "carrier", "--as", "102")
    assert json.loads(run("trunk", "list", "--json").output) == []


def test_an_office_manager_may_not_and_bad_input_is_named(run) -> None:  # type: ignore[no-untyped-def]
    refused = run("trunk", "add", "carrier", "--as", "101", *ADD, code=2).output
    assert "trunk.create" in refused
    assert json.loads(run("trunk", "list", "--json").output) == []
    bad = run("trunk", "add", "carrier", "--host", "192.0.2.10", "--did", "12=main",
              code=2).output
    assert "dids '12' is not a phone number" in bad and "E.164" in bad
    gone = run("trunk", "add", "carrier", "--host", "192.0.2.10", "--did",
               "+15551230000=ext:999", code=2).output
    assert "ext:999" in gone and "existing extension" in gone
    assert "nothing to change" in run("trunk", "set", "carrier", code=2).output
