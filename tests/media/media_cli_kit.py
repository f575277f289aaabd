"""Runs `frontdesk ...` (the real click CLI, in process) against one test database, for the
voicemail and menu configuration CLI tests; and reads the audit rows they check.

What it must never do: talk to a database other than the test's own, or hide a command's
exit status (a wrong one fails the test with the command's output).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select

from frontdesk.cli import cli
from frontdesk.org.model import AuditEntry
from frontdesk.store.db import Database


class Fd:
    """Runs `frontdesk ...` against one database."""

    def __init__(self, db: Database, tmp_path: Path) -> None:
        self.db = db
        self.data = tmp_path
        self.base = ["--data", str(tmp_path), "--db", db.url.render_as_string(hide_password=False)]

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, [*args, *self.base])
        assert result.exit_code == code, (args, result.output, result.exception)
        return result


def demo_fd(db: Database, tmp_path: Path) -> Fd:
    """The demo tenant in ``db``, with 101 as the Phone Manager."""
    runner = Fd(db, tmp_path)
    runner("init", "--demo", "--json")
    runner("role", "grant", "101", "phone_manager")
    return runner


def audit_rows(db: Database, resource_type: str) -> list[AuditEntry]:
    """The audit log's rows about ``resource_type``, oldest first."""
    with db.session() as s:
        rows = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.resource_type == resource_type)
                .order_by(AuditEntry.seq)
            )
        )
        s.expunge_all()
        return rows
