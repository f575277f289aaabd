"""`frontdesk voicemail list|export|mark-heard|check|compliance|escalate`: messages and the
voicemail-check compliance report from the command line.

Part of `cli_media` (split for size). Reading a mailbox's messages here is not a check;
``mark-heard`` and ``check`` record one (channel ``cli``, or ``--channel web`` when entering a
check made elsewhere). Never prints a traceback for a person's mistake.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from frontdesk.cli import UserError, _open_db, _tenant, console, data_option, db_option
from frontdesk.cli_media import json_option, tenant_option, voicemail, voicemail_errors
from frontdesk.media import compliance
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import CHECK_CHANNELS, Mailbox


def _moment(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"{value!r} is not a date/time; use ISO 8601, e.g. 2026-11-23 or 2026-11-23T09:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@voicemail.command("list")
@data_option
@db_option
@tenant_option
@json_option
@click.argument("number", required=False)
def list_messages(
    data_dir: Path, db_url: str | None, slug: str | None, as_json: bool, number: str | None
) -> None:
    """Messages (of mailbox NUMBER, or of every mailbox): new first."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        with voicemail_errors():
            boxes = (
                [store.require_mailbox(s, tenant.id, number)]
                if number
                else list(s.query(Mailbox).filter_by(tenant_id=tenant.id).order_by(Mailbox.number))
            )
        rows = [message_dict(box, m) for box in boxes for m in store.list_messages(s, box.id)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Voicemail")
    for col in ("Id", "Mailbox", "From", "Received", "Seconds", "Status"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"],
            r["mailbox"],
            r["caller"],
            r["received_at"],
            f"{r['duration']:.1f}",
            r["status"],
        )
    console.print(table)


def message_dict(box: Mailbox, m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "mailbox": box.number,
        "caller": m.caller,
        "caller_name": m.caller_name,
        "received_at": m.received_at.isoformat(),
        "duration": m.duration,
        "status": m.status,
        "heard_at": m.heard_at.isoformat() if m.heard_at else None,
        "heard_by": m.heard_by,
    }


@voicemail.command("export")
@data_option
@db_option
@tenant_option
@click.argument("message_id")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def export(
    data_dir: Path, db_url: str | None, slug: str | None, message_id: str, out: Path
) -> None:
    """Copy a message's audio (8 kHz WAV) to OUT."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        with voicemail_errors():
            row = store.get_message(s, tenant.id, message_id)
        source = data_dir / row.audio_path
    if not source.exists():
        raise UserError(
            f"the audio of message {message_id} is missing ({source}); restore it "
            "from a backup of the data directory"
        )
    shutil.copyfile(source, out)
    click.echo(f"{out}")


@voicemail.command("mark-heard")
@data_option
@db_option
@tenant_option
@click.argument("message_id")
@click.option("--by", default="local administrator", help="Who listened to it.")
def mark_heard(
    data_dir: Path, db_url: str | None, slug: str | None, message_id: str, by: str
) -> None:
    """Move a message to the saved folder (the phone's lamp follows)."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        with voicemail_errors():
            row = store.get_message(s, tenant.id, message_id)
        store.mark_heard(s, row, by)
        box = s.get(Mailbox, row.mailbox_id)
        assert box is not None
        compliance.record_check(s, box, by, "cli", store.counts(s, box.id)[0])
        click.echo(f"message {message_id} marked heard")


@voicemail.command("check")
@data_option
@db_option
@tenant_option
@click.argument("number")
@click.option("--by", required=True, help="Who checked the mailbox.")
@click.option("--channel", type=click.Choice(CHECK_CHANNELS), default="cli", show_default=True)
def check(
    data_dir: Path, db_url: str | None, slug: str | None, number: str, by: str, channel: str
) -> None:
    """Record that someone checked mailbox NUMBER now."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        with voicemail_errors():
            box = store.require_mailbox(s, tenant.id, number)
        row = compliance.record_check(s, box, by, channel, store.counts(s, box.id)[0])
        click.echo(f"check of mailbox {number} by {by} ({channel}) at {row.checked_at.isoformat()}")


@voicemail.command("compliance")
@data_option
@db_option
@tenant_option
@json_option
@click.option("--since", default=None, help="Start (ISO 8601; default: 7 days ago).")
@click.option("--until", default=None, help="End (ISO 8601; default: now).")
@click.option("--mailbox", "number", default=None)
def compliance_report(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    as_json: bool,
    since: str | None,
    until: str | None,
    number: str | None,
) -> None:
    """Which scheduled mailbox checks were made, by whom, and which were missed."""
    now = datetime.now(UTC)
    end = _moment(until, now)
    start = _moment(since, end - timedelta(days=7))
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        try:
            reports = compliance.report(s, tenant.id, start, end, now, number)
        except compliance.ScheduleError as exc:
            raise UserError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
        return
    table = Table(title=f"Voicemail checks {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
    for col in ("Mailbox", "Responsible", "Schedule", "Done", "Missed", "Compliance", "Last check"):
        table.add_column(col)
    for r in reports:
        last = f"{r.checks[-1][0]:%Y-%m-%d %H:%M} by {r.checks[-1][1]}" if r.checks else "never"
        share = f"{100 * r.compliance:.0f} %" if r.compliance is not None else "-"
        table.add_row(
            r.mailbox, ", ".join(r.responsible), r.schedule, str(r.done), str(r.missed), share, last
        )
    console.print(table)


@voicemail.command("escalate")
@data_option
@db_option
def escalate(data_dir: Path, db_url: str | None) -> None:
    """Escalate missed checks now (the server does this every minute)."""
    db = _open_db(data_dir, db_url)
    with db.session() as s:
        events = compliance.escalate_missed(s, datetime.now(UTC))
    for e in events:
        click.echo(
            f"mailbox {e.mailbox}: check at {e.slot_at:%Y-%m-%d %H:%M} UTC missed; "
            f"escalated to {e.escalated_to or 'nobody (set --escalate-to)'}"
        )
    if not events:
        click.echo("no newly missed checks")
